INSERT INTO analytics.daily_category_sales AS t (date, category, orders, revenue, units, transactions, batch_id)
SELECT date, category, coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * total_amount) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(sign * quantity) FILTER (WHERE status = 'completed'), 0), sum(sign), :batch_id
FROM fact_delta GROUP BY date, category
ON CONFLICT ON CONSTRAINT daily_category_sales_key DO UPDATE
SET orders = t.orders + EXCLUDED.orders, revenue = t.revenue + EXCLUDED.revenue, units = t.units + EXCLUDED.units,
    transactions = t.transactions + EXCLUDED.transactions, batch_id = EXCLUDED.batch_id, refreshed_at = now();
