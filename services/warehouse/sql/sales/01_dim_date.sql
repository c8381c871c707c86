-- The calendar rows of the batch's dates.
INSERT INTO processed.dim_date (date_key, full_date, year, quarter, month, week, day_of_week, is_weekend)
SELECT to_char(d, 'YYYYMMDD')::integer, d, extract(year FROM d), extract(quarter FROM d),
       extract(month FROM d), extract(week FROM d), extract(isodow FROM d), extract(isodow FROM d) IN (6, 7)
FROM (SELECT DISTINCT (transaction_ts AT TIME ZONE 'UTC')::date AS d
      FROM staging.sales WHERE batch_id = :batch_id) dates
ON CONFLICT (date_key) DO NOTHING;
