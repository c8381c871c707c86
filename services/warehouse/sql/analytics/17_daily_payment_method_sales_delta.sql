INSERT INTO analytics.daily_payment_method_sales AS t (date, payment_method, orders, revenue, units,
    transactions, cancelled, refunded, batch_id)
SELECT date, payment_method, coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * total_amount) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * quantity) FILTER (WHERE status = 'completed'), 0), sum(sign),
       coalesce(sum(sign) FILTER (WHERE status = 'cancelled'), 0),
       coalesce(sum(sign) FILTER (WHERE status = 'refunded'), 0), :batch_id
FROM fact_delta GROUP BY date, payment_method
ON CONFLICT ON CONSTRAINT daily_payment_method_sales_key DO UPDATE
SET orders = t.orders + EXCLUDED.orders, revenue = t.revenue + EXCLUDED.revenue, units = t.units + EXCLUDED.units,
    transactions = t.transactions + EXCLUDED.transactions, cancelled = t.cancelled + EXCLUDED.cancelled,
    refunded = t.refunded + EXCLUDED.refunded, batch_id = EXCLUDED.batch_id, refreshed_at = now();
