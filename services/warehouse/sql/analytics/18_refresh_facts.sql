-- The rebuilt dates' facts, once (18 to 22). The delta's new fact versions are facts as they are now, bound to
-- their versions: a rebuilt date all of whose facts the delta holds (after 15, daily_sales counts them) is read
-- from the delta alone, as a batch of new days is; 21 reads the other rebuilt dates' remaining facts.
CREATE TEMP TABLE refresh_facts ON COMMIT DROP AS
SELECT date, status, quantity, total_amount, customer_id, state, country, product_id
FROM fact_delta WHERE sign = 1 AND date IN (SELECT full_date FROM rebuilt_dates);
