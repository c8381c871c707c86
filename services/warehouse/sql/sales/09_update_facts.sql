-- A transaction already loaded takes the batch's record when it differs and the batch is not older than the
-- one whose record the fact holds (a fact's batch_id is the sales batch whose record it holds: replaying an
-- older batch changes nothing). The facts it rewrites join the delta with their new records.
WITH written AS (
    UPDATE processed.fact_sales f
    SET (transaction_ts, date_key, customer_key, product_key, quantity, unit_price, total_amount, payment_method,
         status, batch_id, loaded_at)
      = (n.transaction_ts, n.date_key, n.customer_key, n.product_key, n.quantity, n.unit_price, n.total_amount,
         n.payment_method, n.status, n.batch_id, now())
    FROM batch_facts n
    WHERE NOT n.is_new AND f.sale_key = n.sale_key
      AND (f.transaction_ts, f.date_key, f.customer_key, f.product_key, f.quantity, f.unit_price, f.total_amount,
           f.payment_method, f.status)
          IS DISTINCT FROM (n.transaction_ts, n.date_key, n.customer_key, n.product_key, n.quantity, n.unit_price,
                            n.total_amount, n.payment_method, n.status)
      AND coalesce((SELECT b.received_at FROM ops.batches b WHERE b.batch_id = n.batch_id)
                   >= (SELECT b.received_at FROM ops.batches b WHERE b.batch_id = f.batch_id), true)
    RETURNING f.sale_key)
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state)
SELECT n.sale_key, 1, (n.transaction_ts AT TIME ZONE 'UTC')::date, n.status, n.quantity, n.total_amount,
       n.payment_method, n.product_id, n.category, n.customer_id, n.country, n.state
FROM batch_facts n JOIN written w ON w.sale_key = n.sale_key WHERE NOT n.is_new;
