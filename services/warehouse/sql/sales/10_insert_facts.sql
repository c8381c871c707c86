-- The new transactions' facts. No ON CONFLICT: the sales lock keeps every other writer of fact_sales out, a plain
-- insert skips the speculative insertion ON CONFLICT makes per row, and with the indexes suspended (bulk.py)
-- there is no arbiter index anyway.
INSERT INTO processed.fact_sales (sale_key, transaction_id, transaction_ts, date_key, customer_key, product_key,
    quantity, unit_price, total_amount, payment_method, status, batch_id)
OVERRIDING SYSTEM VALUE
SELECT n.sale_key, n.transaction_id, n.transaction_ts, n.date_key, n.customer_key, n.product_key, n.quantity,
       n.unit_price, n.total_amount, n.payment_method, n.status, n.batch_id
FROM batch_facts n WHERE n.is_new;
