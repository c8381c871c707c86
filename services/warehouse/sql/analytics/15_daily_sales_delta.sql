-- The additive measures (counts and sums) take the signed sums of the delta, files 15 to 17 and 26.
INSERT INTO analytics.daily_sales AS t (date, date_key, orders, revenue, units, transactions, cancelled,
    refunded, avg_order_value, distinct_customers, batch_id)
SELECT date, to_char(date, 'YYYYMMDD')::integer, coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * total_amount) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * quantity) FILTER (WHERE status = 'completed'), 0), sum(sign),
       coalesce(sum(sign) FILTER (WHERE status = 'cancelled'), 0),
       coalesce(sum(sign) FILTER (WHERE status = 'refunded'), 0), 0, 0, :batch_id
FROM fact_delta GROUP BY date
ON CONFLICT (date) DO UPDATE
SET orders = t.orders + EXCLUDED.orders, revenue = t.revenue + EXCLUDED.revenue, units = t.units + EXCLUDED.units,
    transactions = t.transactions + EXCLUDED.transactions, cancelled = t.cancelled + EXCLUDED.cancelled,
    refunded = t.refunded + EXCLUDED.refunded, batch_id = EXCLUDED.batch_id, refreshed_at = now();
