DROP TABLE affected_dates, fact_delta, first_order_moves;
