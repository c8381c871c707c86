UPDATE analytics.daily_sales d
SET distinct_customers = coalesce(k.customers, 0),
    avg_order_value = CASE WHEN d.orders > 0 THEN round(d.revenue / d.orders, 2) ELSE 0 END
FROM rebuilt_dates a
LEFT JOIN (SELECT date, count(DISTINCT customer_id) FILTER (WHERE status = 'completed') FROM refresh_facts
           GROUP BY date)
     AS k (date, customers) ON k.date = a.full_date
WHERE d.date = a.full_date;
