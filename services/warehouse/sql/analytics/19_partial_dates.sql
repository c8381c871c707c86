CREATE TEMP TABLE partial_dates ON COMMIT DROP AS
SELECT s.date_key FROM rebuilt_dates r
JOIN analytics.daily_sales s ON s.date = r.full_date
LEFT JOIN (SELECT date, count(*) AS n FROM fact_delta WHERE sign = 1 GROUP BY date) d ON d.date = r.full_date
WHERE s.transactions > coalesce(d.n, 0);
