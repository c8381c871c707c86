INSERT INTO analytics.daily_customer_activity AS t (date, customers, new_customers, returning_customers,
    new_customer_orders, returning_customer_orders, new_customer_revenue, returning_customer_revenue, batch_id)
SELECT date, customers, new_customers, returning_customers, new_customer_orders, returning_customer_orders,
       new_customer_revenue, returning_customer_revenue, :batch_id
FROM activity_delta
ON CONFLICT (date) DO UPDATE
SET customers = t.customers + EXCLUDED.customers, new_customers = t.new_customers + EXCLUDED.new_customers,
    returning_customers = t.returning_customers + EXCLUDED.returning_customers,
    new_customer_orders = t.new_customer_orders + EXCLUDED.new_customer_orders,
    returning_customer_orders = t.returning_customer_orders + EXCLUDED.returning_customer_orders,
    new_customer_revenue = t.new_customer_revenue + EXCLUDED.new_customer_revenue,
    returning_customer_revenue = t.returning_customer_revenue + EXCLUDED.returning_customer_revenue,
    batch_id = EXCLUDED.batch_id, refreshed_at = now();
