INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders, revenue, units,
    batch_id)
SELECT customer_id, first_added, last_added, orders, revenue, units, :batch_id FROM summary_delta d
WHERE NOT recount AND NOT EXISTS (SELECT 1 FROM analytics.customer_summary t WHERE t.customer_id = d.customer_id);
