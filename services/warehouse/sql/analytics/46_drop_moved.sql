DROP TABLE customer_day_delta, activity_pairs, customer_days, customer_day_now, activity_delta;
