DELETE FROM analytics.daily_customer_activity WHERE date IN (SELECT full_date FROM rebuilt_dates);
