DELETE FROM analytics.daily_customer_activity WHERE customers = 0 AND date IN (SELECT date FROM activity_delta);
