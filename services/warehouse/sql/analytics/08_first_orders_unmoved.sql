DELETE FROM first_order_moves WHERE before IS NOT DISTINCT FROM after;
