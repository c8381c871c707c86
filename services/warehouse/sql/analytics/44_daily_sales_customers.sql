UPDATE analytics.daily_sales d SET distinct_customers = d.distinct_customers + a.customers
FROM activity_delta a WHERE d.date = a.date AND a.customers <> 0;
