UPDATE analytics.daily_sales SET avg_order_value = CASE WHEN orders > 0 THEN round(revenue / orders, 2) ELSE 0 END
WHERE date IN (SELECT DISTINCT date FROM fact_delta WHERE date NOT IN (SELECT full_date FROM rebuilt_dates));
