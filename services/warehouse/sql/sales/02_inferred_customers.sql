-- A customer the batch sells to before its records arrive gets an inferred member, whose interval starts at
-- 1900 so that facts of any date bind to it until real history completes it (dimensions/09).
INSERT INTO processed.dim_customers (customer_id, valid_from, is_inferred, batch_id)
SELECT DISTINCT s.customer_id, '1900-01-01 00:00:00+00'::timestamptz, true, s.batch_id
FROM staging.sales s
WHERE s.batch_id = :batch_id AND s.customer_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM processed.dim_customers c WHERE c.customer_id = s.customer_id);
