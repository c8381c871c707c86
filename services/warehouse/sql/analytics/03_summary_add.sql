-- Customers with a summary already take the delta by a joined update (no speculative insertion per row, which
-- ON CONFLICT makes); 04 inserts the others.
UPDATE analytics.customer_summary t
SET first_order_date = least(t.first_order_date, d.first_added),
    last_order_date = greatest(t.last_order_date, d.last_added),
    orders = t.orders + d.orders, revenue = t.revenue + d.revenue, units = t.units + d.units,
    batch_id = :batch_id, refreshed_at = now()
FROM summary_delta d WHERE NOT d.recount AND t.customer_id = d.customer_id;
