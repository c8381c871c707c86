ANALYZE customer_day_delta;
