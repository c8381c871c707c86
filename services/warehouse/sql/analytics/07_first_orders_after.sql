UPDATE first_order_moves m SET after = cs.first_order_date
FROM analytics.customer_summary cs WHERE cs.customer_id = m.customer_id;
