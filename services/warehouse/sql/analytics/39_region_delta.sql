-- The region table takes the additive measures and the customers that start (orders now > 0, before <= 0) or
-- stop counting. Each nullable column's equality is written so that a hash join can still use it.
INSERT INTO analytics.daily_region_sales AS t (date, country, state, orders, revenue, units, transactions,
    distinct_customers, batch_id)
SELECT d.date, d.country, d.state, sum(d.orders), sum(d.revenue), sum(d.units), sum(d.transactions),
       count(*) FILTER (WHERE d.customer_id IS NOT NULL AND coalesce(n.orders, 0) > 0
                              AND coalesce(n.orders, 0) - d.orders <= 0)
       - count(*) FILTER (WHERE d.customer_id IS NOT NULL AND coalesce(n.orders, 0) <= 0
                                AND coalesce(n.orders, 0) - d.orders > 0),
       :batch_id
FROM customer_day_delta d
LEFT JOIN customer_day_now n
    ON n.date = d.date
    AND coalesce(n.customer_id, '') = coalesce(d.customer_id, '') AND (n.customer_id IS NULL) = (d.customer_id IS NULL)
    AND coalesce(n.country, '') = coalesce(d.country, '') AND (n.country IS NULL) = (d.country IS NULL)
    AND coalesce(n.state, '') = coalesce(d.state, '') AND (n.state IS NULL) = (d.state IS NULL)
GROUP BY d.date, d.country, d.state
ON CONFLICT ON CONSTRAINT daily_region_sales_key DO UPDATE
SET orders = t.orders + EXCLUDED.orders, revenue = t.revenue + EXCLUDED.revenue, units = t.units + EXCLUDED.units,
    transactions = t.transactions + EXCLUDED.transactions,
    distinct_customers = t.distinct_customers + EXCLUDED.distinct_customers, batch_id = EXCLUDED.batch_id,
    refreshed_at = now();
