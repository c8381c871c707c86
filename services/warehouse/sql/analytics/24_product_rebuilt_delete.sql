-- daily_product_sales holds about a row per fact (few sales of one product a day): the rebuilt dates get their
-- rows recomputed from their facts (24, 25), plain inserts; the others take the delta (26).
DELETE FROM analytics.daily_product_sales WHERE date IN (SELECT full_date FROM rebuilt_dates);
