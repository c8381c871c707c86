-- What the pairs' standing before (b) and after (a) the load does to daily_customer_activity, per date.
CREATE TEMP TABLE activity_delta ON COMMIT DROP AS
WITH now AS (
    SELECT p.date, p.customer_id, coalesce(sum(s.orders), 0) AS a_orders, coalesce(sum(s.revenue), 0) AS a_revenue,
           coalesce(sum(s.orders), 0) - p.orders AS b_orders, coalesce(sum(s.revenue), 0) - p.revenue AS b_revenue
    FROM activity_pairs p
    LEFT JOIN customer_day_now s ON s.date = p.date AND s.customer_id = p.customer_id
    GROUP BY p.date, p.customer_id, p.orders, p.revenue),
pairs AS (
    SELECT n.*, cs.first_order_date AS a_first,
           CASE WHEN m.customer_id IS NULL THEN cs.first_order_date ELSE m.before END AS b_first
    FROM now n
    LEFT JOIN analytics.customer_summary cs ON cs.customer_id = n.customer_id
    LEFT JOIN first_order_moves m ON m.customer_id = n.customer_id)
SELECT a.date, a.customers - b.customers AS customers, a.new_customers - b.new_customers AS new_customers,
       a.returning_customers - b.returning_customers AS returning_customers,
       a.new_customer_orders - b.new_customer_orders AS new_customer_orders,
       a.returning_customer_orders - b.returning_customer_orders AS returning_customer_orders,
       a.new_customer_revenue - b.new_customer_revenue AS new_customer_revenue,
       a.returning_customer_revenue - b.returning_customer_revenue AS returning_customer_revenue
FROM (SELECT date, count(*) FILTER (WHERE a_orders > 0), count(*) FILTER (WHERE a_orders > 0 AND a_first = date),
             count(*) FILTER (WHERE a_orders > 0 AND a_first < date),
             coalesce(sum(a_orders) FILTER (WHERE a_first = date), 0),
             coalesce(sum(a_orders) FILTER (WHERE a_first < date), 0),
             coalesce(sum(a_revenue) FILTER (WHERE a_first = date), 0),
             coalesce(sum(a_revenue) FILTER (WHERE a_first < date), 0)
      FROM pairs GROUP BY date)
     AS a (date, customers, new_customers, returning_customers, new_customer_orders, returning_customer_orders,
           new_customer_revenue, returning_customer_revenue)
JOIN (SELECT date, count(*) FILTER (WHERE b_orders > 0), count(*) FILTER (WHERE b_orders > 0 AND b_first = date),
             count(*) FILTER (WHERE b_orders > 0 AND b_first < date),
             coalesce(sum(b_orders) FILTER (WHERE b_first = date), 0),
             coalesce(sum(b_orders) FILTER (WHERE b_first < date), 0),
             coalesce(sum(b_revenue) FILTER (WHERE b_first = date), 0),
             coalesce(sum(b_revenue) FILTER (WHERE b_first < date), 0)
      FROM pairs GROUP BY date)
     AS b (date, customers, new_customers, returning_customers, new_customer_orders, returning_customer_orders,
           new_customer_revenue, returning_customer_revenue)
USING (date);
