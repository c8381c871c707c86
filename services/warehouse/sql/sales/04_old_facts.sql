-- The facts the batch's transactions hold now, as the analytics saw them; 13_unchanged_facts drops those the
-- update leaves alone.
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state, transaction_id)
SELECT f.sale_key, -1, (f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount,
       f.payment_method, p.product_id, p.category, c.customer_id, c.country, c.state, f.transaction_id
FROM staging.sales s
JOIN processed.fact_sales f ON f.transaction_id = s.transaction_id
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
WHERE s.batch_id = :batch_id;
