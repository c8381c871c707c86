-- The (date, customer) pairs whose standing may move: the batch changed their completed sales, or the day is
-- the customer's old or new first-order date (new vs returning changes there and nowhere else).
CREATE TEMP TABLE activity_pairs ON COMMIT DROP AS
SELECT date, customer_id, sum(orders) AS orders, sum(revenue) AS revenue
FROM (SELECT date, customer_id, orders, revenue FROM customer_day_delta
      WHERE customer_id IS NOT NULL AND (orders <> 0 OR revenue <> 0)
      UNION ALL SELECT before, customer_id, 0, 0 FROM first_order_moves WHERE before IS NOT NULL
      UNION ALL SELECT after, customer_id, 0, 0 FROM first_order_moves WHERE after IS NOT NULL) x
WHERE date NOT IN (SELECT full_date FROM rebuilt_dates)
GROUP BY date, customer_id;
