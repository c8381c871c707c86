-- The days of facts 37 reads, per customer.
CREATE TEMP TABLE customer_days ON COMMIT DROP AS
SELECT to_char(date, 'YYYYMMDD')::integer AS date_key, customer_id FROM activity_pairs
UNION
SELECT to_char(date, 'YYYYMMDD')::integer, customer_id FROM customer_day_delta WHERE customer_id IS NOT NULL;
