-- The facts under those keys, to re-bind once the history is reconciled.
CREATE TEMP TABLE scd_facts ON COMMIT DROP AS
SELECT f.sale_key, f.transaction_ts, f.date_key, h.id, f.{sk} AS old_sk, NULL::bigint AS new_sk
FROM processed.fact_sales f JOIN scd_have h ON h.sk = f.{sk};
