INSERT INTO refresh_facts (date, status, quantity, total_amount, customer_id, state, country, product_id)
SELECT (f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount,
       c.customer_id, c.state, c.country, p.product_id
FROM processed.fact_sales f
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
WHERE f.date_key IN (SELECT date_key FROM partial_dates)
  AND NOT EXISTS (SELECT 1 FROM fact_delta d WHERE d.sign = 1 AND d.sale_key = f.sale_key);
