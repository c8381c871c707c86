-- A large delta rebuilds from their facts the dates it changed a good share of (a batch of new days), where
-- the measure is per product or not additive; a small one moves every date's figures.
CREATE TEMP TABLE rebuilt_dates ON COMMIT DROP AS
SELECT a.full_date FROM affected_dates a
LEFT JOIN (SELECT date, count(*) AS n FROM fact_delta GROUP BY date) d ON d.date = a.full_date
LEFT JOIN analytics.daily_sales s ON s.date = a.full_date
WHERE :large AND coalesce(d.n, 0) >= CAST(:share AS float8) * coalesce(s.transactions, 0);
