-- The facts a products load moved (bound elsewhere, or their version's attributes changed) join the delta, with
-- the old version's product_id and category out and the new one's in.
INSERT INTO fact_delta (sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state)
SELECT f.sale_key, x.sign, (f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount,
       f.payment_method, x.product_id, x.category, c.customer_id, c.country, c.state
FROM (SELECT m.sale_key, -1 AS sign, h.id AS product_id, h.category
      FROM scd_facts m JOIN scd_have h ON h.sk = m.old_sk
      WHERE m.new_sk IS DISTINCT FROM m.old_sk OR m.new_sk IN (SELECT sk FROM scd_changed)
      UNION ALL
      SELECT m.sale_key, 1, p.product_id, p.category
      FROM scd_facts m LEFT JOIN processed.dim_products p ON p.product_key = m.new_sk
      WHERE m.new_sk IS DISTINCT FROM m.old_sk OR m.new_sk IN (SELECT sk FROM scd_changed)) x
JOIN processed.fact_sales f ON f.sale_key = x.sale_key
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key;
