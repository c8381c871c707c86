DELETE FROM analytics.daily_region_sales WHERE transactions = 0 AND date IN (SELECT date FROM customer_day_delta);
