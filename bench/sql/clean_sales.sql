-- The sales stage as one PostgreSQL script: the baseline the Spark stage is measured against.
--
-- Input: bench_in (source_line, the contract's columns as text), filled by COPY in file order.
-- Settings: sdp.batch_id (uuid) and sdp.now (timestamptz) set for the transaction.
-- Output, as the Spark stage writes them: raw.sales, staging.sales (typed, valid, one row per
-- transaction_id, the last line of the file wins) and staging.sales_rejects (every reason that applies).
-- The rules are services/transform/transforms.py's, written as set-based SQL. Each step ends in OFFSET 0 so
-- PostgreSQL computes its columns once per row instead of inlining them into every later reference.

SET LOCAL timezone = 'UTC';
SET LOCAL work_mem = '256MB';

INSERT INTO raw.sales (batch_id, source_line, transaction_id, transaction_ts, customer_id, product_id, quantity,
                       unit_price, total_amount, payment_method, status)
SELECT current_setting('sdp.batch_id')::uuid, source_line, transaction_id, transaction_ts, customer_id, product_id,
       quantity, unit_price, total_amount, payment_method, status
FROM bench_in;

CREATE TEMP TABLE bench_typed ON COMMIT DROP AS
WITH cleaned AS (
    SELECT source_line,
           greatest(length(transaction_id), length(customer_id), length(product_id)) > 256
             OR greatest(length(transaction_ts), length(quantity), length(unit_price), length(total_amount),
                         length(payment_method), length(status)) > 4096 AS too_long,
           nullif(btrim(transaction_id, E' \t\r\n'), '') AS transaction_id,
           nullif(btrim(transaction_ts, E' \t\r\n'), '') AS ts_text,
           nullif(btrim(customer_id, E' \t\r\n'), '') AS customer_id,
           nullif(btrim(product_id, E' \t\r\n'), '') AS product_id,
           nullif(btrim(quantity, E' \t\r\n'), '') AS qty_text,
           nullif(btrim(unit_price, E' \t\r\n'), '') AS price_text,
           nullif(btrim(total_amount, E' \t\r\n'), '') AS total_text,
           lower(nullif(btrim(payment_method, E' \t\r\n'), '')) AS payment_method,
           lower(nullif(btrim(status, E' \t\r\n'), '')) AS status
    FROM bench_in
    OFFSET 0
), checked AS (
    SELECT c.*,
           -- A timestamp's parts are checked before the cast, which would fail the script, not the row
           -- (year 0000 as written too: PostgreSQL refuses it).
           c.ts_text ~ '^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-](0\d|1[0-4])(:?[0-5]\d)?)?$'
             AND substr(c.ts_text, 9, 2)::int
                 <= extract(day from make_date(substr(c.ts_text, 1, 4)::int, substr(c.ts_text, 6, 2)::int, 1)
                                     + interval '1 month - 1 day') AS ts_ok,
           c.qty_text ~ '^[+-]?\d{1,9}$' AS qty_ok,
           c.price_text ~ '^[+-]?(\d{1,30}(\.\d*)?|\.\d+)$' AS price_ok,
           c.total_text ~ '^[+-]?(\d{1,30}(\.\d*)?|\.\d+)$' AS total_ok
    FROM cleaned c
    OFFSET 0
), parsed AS (
    SELECT k.*,
           CASE WHEN k.ts_ok THEN k.ts_text::timestamptz END AS ts_any,
           CASE WHEN k.qty_ok THEN k.qty_text::int END AS qty,
           CASE WHEN k.price_ok THEN k.price_text::numeric END AS price_wide,
           CASE WHEN k.total_ok THEN k.total_text::numeric END AS total_wide
    FROM checked k
    OFFSET 0
), money AS (
    SELECT p.*,
           -- Years 1 to 9999 in UTC, as the transform accepts: an offset moves an instant out of them.
           CASE WHEN p.ts_any BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'
                THEN p.ts_any END AS transaction_ts,
           CASE WHEN abs(round(p.price_wide, 2)) < 1e10 THEN round(p.price_wide, 2)::numeric(12, 2) END AS price,
           CASE WHEN abs(round(p.total_wide, 2)) < 1e10 THEN round(p.total_wide, 2)::numeric(12, 2) END AS total_given
    FROM parsed p
    OFFSET 0
), derived AS (
    SELECT m.*,
           CASE WHEN abs(m.qty * m.price) < 1e10 THEN (m.qty * m.price)::numeric(12, 2) END AS derived_total
    FROM money m
    OFFSET 0
)
SELECT d.source_line, d.transaction_id, d.transaction_ts, d.customer_id, d.product_id,
       d.qty AS quantity, d.price AS unit_price, coalesce(d.total_given, d.derived_total) AS total_amount,
       d.payment_method, d.status,
       array_remove(ARRAY[
           CASE WHEN d.too_long THEN 'field_too_long' END,
           CASE WHEN d.transaction_id IS NULL THEN 'missing_transaction_id' END,
           CASE WHEN d.ts_text IS NULL THEN 'missing_transaction_ts' END,
           CASE WHEN d.ts_text IS NOT NULL AND d.transaction_ts IS NULL THEN 'invalid_transaction_ts' END,
           CASE WHEN d.transaction_ts > current_setting('sdp.now')::timestamptz + interval '300 seconds'
                THEN 'future_timestamp' END,
           CASE WHEN d.qty_text IS NOT NULL AND d.qty IS NULL THEN 'invalid_quantity' END,
           CASE WHEN d.qty <= 0 THEN 'non_positive_quantity' END,
           CASE WHEN d.price_text IS NOT NULL AND d.price IS NULL THEN 'invalid_unit_price' END,
           CASE WHEN d.price_wide < 0 THEN 'negative_price' END,
           CASE WHEN (d.total_text IS NOT NULL AND d.total_given IS NULL)
                  OR (d.qty IS NOT NULL AND d.price IS NOT NULL AND d.derived_total IS NULL)
                THEN 'invalid_total_amount' END,
           CASE WHEN abs(d.total_given - d.qty * d.price) > 0.01 THEN 'total_mismatch' END,
           CASE WHEN d.status NOT IN ('completed', 'pending', 'cancelled', 'refunded') THEN 'invalid_status' END,
           CASE WHEN d.payment_method NOT IN ('credit_card', 'debit_card', 'pix', 'boleto', 'cash', 'paypal')
                THEN 'invalid_payment_method' END
       ], NULL) AS reasons
FROM derived d;

INSERT INTO staging.sales (batch_id, source_line, transaction_id, transaction_ts, customer_id, product_id, quantity,
                           unit_price, total_amount, payment_method, status)
SELECT DISTINCT ON (transaction_id COLLATE "C")
       current_setting('sdp.batch_id')::uuid, source_line, transaction_id, transaction_ts, customer_id, product_id,
       quantity, unit_price, total_amount, payment_method, status
FROM bench_typed
WHERE cardinality(reasons) = 0
ORDER BY transaction_id COLLATE "C", source_line DESC;

INSERT INTO staging.sales_rejects (batch_id, source_line, reasons, record)
SELECT current_setting('sdp.batch_id')::uuid, t.source_line, t.reasons,
       jsonb_build_object('transaction_id', i.transaction_id, 'transaction_ts', i.transaction_ts,
                          'customer_id', i.customer_id, 'product_id', i.product_id, 'quantity', i.quantity,
                          'unit_price', i.unit_price, 'total_amount', i.total_amount,
                          'payment_method', i.payment_method, 'status', i.status)
FROM bench_typed t
JOIN bench_in i USING (source_line)
WHERE cardinality(t.reasons) > 0;
