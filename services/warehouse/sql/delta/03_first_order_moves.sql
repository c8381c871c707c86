-- The customers whose first-order date a sales load moves, with the date before and after (NULL: none).
CREATE TEMP TABLE IF NOT EXISTS first_order_moves (customer_id text PRIMARY KEY, before date, after date)
ON COMMIT DROP;
