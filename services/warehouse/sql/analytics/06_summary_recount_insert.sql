INSERT INTO analytics.customer_summary (customer_id, first_order_date, last_order_date, orders, revenue, units,
    batch_id)
SELECT c.customer_id, min(f.transaction_ts AT TIME ZONE 'UTC')::date,
       max(f.transaction_ts AT TIME ZONE 'UTC')::date, count(*), sum(coalesce(f.total_amount, 0)),
       sum(coalesce(f.quantity, 0)), :batch_id
FROM processed.fact_sales f JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE f.status = 'completed' AND c.customer_id IN (SELECT customer_id FROM summary_delta WHERE recount)
GROUP BY c.customer_id;
