ANALYZE customer_day_now;
