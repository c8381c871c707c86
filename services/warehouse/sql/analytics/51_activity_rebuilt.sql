INSERT INTO analytics.daily_customer_activity (date, customers, new_customers, returning_customers,
    new_customer_orders, returning_customer_orders, new_customer_revenue, returning_customer_revenue, batch_id)
SELECT x.date, count(*), count(*) FILTER (WHERE cs.first_order_date = x.date),
       count(*) FILTER (WHERE cs.first_order_date < x.date),
       coalesce(sum(x.orders) FILTER (WHERE cs.first_order_date = x.date), 0),
       coalesce(sum(x.orders) FILTER (WHERE cs.first_order_date < x.date), 0),
       coalesce(sum(x.revenue) FILTER (WHERE cs.first_order_date = x.date), 0),
       coalesce(sum(x.revenue) FILTER (WHERE cs.first_order_date < x.date), 0),
       :batch_id
FROM (SELECT date, customer_id, count(*) AS orders, sum(coalesce(total_amount, 0)) AS revenue
      FROM refresh_facts WHERE status = 'completed' AND customer_id IS NOT NULL
      GROUP BY date, customer_id) x
JOIN analytics.customer_summary cs ON cs.customer_id = x.customer_id
GROUP BY x.date;
