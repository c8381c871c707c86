-- As 02_inferred_customers, for products.
INSERT INTO processed.dim_products (product_id, valid_from, is_inferred, batch_id)
SELECT DISTINCT s.product_id, '1900-01-01 00:00:00+00'::timestamptz, true, s.batch_id
FROM staging.sales s
WHERE s.batch_id = :batch_id AND s.product_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM processed.dim_products p WHERE p.product_id = s.product_id);
