-- The new facts join the delta, as 09_update_facts adds the rewritten ones.
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state)
SELECT n.sale_key, 1, (n.transaction_ts AT TIME ZONE 'UTC')::date, n.status, n.quantity, n.total_amount,
       n.payment_method, n.product_id, n.category, n.customer_id, n.country, n.state
FROM batch_facts n WHERE n.is_new;
