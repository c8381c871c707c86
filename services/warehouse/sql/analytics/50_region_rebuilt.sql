INSERT INTO analytics.daily_region_sales (date, country, state, orders, revenue, units, transactions,
    distinct_customers, batch_id)
SELECT date, country, state, count(*) FILTER (WHERE status = 'completed'),
       coalesce(sum(total_amount) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(quantity) FILTER (WHERE status = 'completed'), 0), count(*),
       count(DISTINCT customer_id) FILTER (WHERE status = 'completed'), :batch_id
FROM refresh_facts GROUP BY date, country, state;
