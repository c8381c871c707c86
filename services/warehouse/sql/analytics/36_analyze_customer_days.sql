ANALYZE customer_days;
