DELETE FROM analytics.daily_payment_method_sales WHERE transactions = 0 AND date IN (SELECT DISTINCT date FROM fact_delta);
