-- The completed sales those customers hold now on those days, by region as of the sale.
CREATE TEMP TABLE customer_day_now ON COMMIT DROP AS
SELECT (f.transaction_ts AT TIME ZONE 'UTC')::date AS date, c.customer_id, c.country, c.state,
       count(*) FILTER (WHERE f.status = 'completed') AS orders,
       coalesce(sum(f.total_amount) FILTER (WHERE f.status = 'completed'), 0) AS revenue
FROM customer_days k
JOIN processed.dim_customers c ON c.customer_id = k.customer_id
JOIN processed.fact_sales f ON f.customer_key = c.customer_key AND f.date_key = k.date_key
GROUP BY 1, 2, 3, 4;
