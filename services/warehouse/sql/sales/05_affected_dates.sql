-- The batch's dates and those of the facts its transactions held before (04_old_facts).
INSERT INTO affected_dates (full_date)
SELECT (transaction_ts AT TIME ZONE 'UTC')::date FROM staging.sales WHERE batch_id = :batch_id
UNION
SELECT date FROM fact_delta
ON CONFLICT DO NOTHING;
