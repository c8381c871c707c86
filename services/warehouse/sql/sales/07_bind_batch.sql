-- The batch's facts bound point in time, with the bound versions' attributes the analytics group by, once for
-- the update and the insert. A sale binds to the version whose [bind_from, valid_to) holds it; bind_from is a
-- version's valid_from, or -infinity for a key's first version (a sale before the first version binds to it).
-- A transaction loaded already keeps the sale_key of its fact (04_old_facts found them); a new one takes its
-- sale_key from the identity's sequence here, so that its fact and its delta row are both written from this
-- table. The sequence is resolved once (an init plan), not per row.
CREATE TEMP TABLE batch_facts ON COMMIT DROP AS
SELECT n.*, o.sale_key IS NULL AS is_new,
       coalesce(o.sale_key, nextval((SELECT pg_get_serial_sequence('processed.fact_sales', 'sale_key')::regclass)))
           AS sale_key
FROM (
    SELECT s.transaction_id, s.transaction_ts,
           to_char((s.transaction_ts AT TIME ZONE 'UTC')::date, 'YYYYMMDD')::integer AS date_key, c.customer_key,
           p.product_key, s.quantity, s.unit_price, s.total_amount, s.payment_method, s.status, s.batch_id,
           p.product_id, p.category, c.customer_id, c.country, c.state
    FROM staging.sales s
    LEFT JOIN (
        SELECT customer_key, customer_id, country, state, valid_to,
               CASE WHEN lag(valid_from) OVER (PARTITION BY customer_id ORDER BY valid_from) IS NULL
                    THEN '-infinity'::timestamptz ELSE valid_from END AS bind_from
        FROM processed.dim_customers) c
        ON c.customer_id = s.customer_id AND s.transaction_ts >= c.bind_from AND s.transaction_ts < c.valid_to
    LEFT JOIN (
        SELECT product_key, product_id, category, valid_to,
               CASE WHEN lag(valid_from) OVER (PARTITION BY product_id ORDER BY valid_from) IS NULL
                    THEN '-infinity'::timestamptz ELSE valid_from END AS bind_from
        FROM processed.dim_products) p
        ON p.product_id = s.product_id AND s.transaction_ts >= p.bind_from AND s.transaction_ts < p.valid_to
    WHERE s.batch_id = :batch_id
) n
LEFT JOIN fact_delta o ON o.sign = -1 AND o.transaction_id = n.transaction_id;
