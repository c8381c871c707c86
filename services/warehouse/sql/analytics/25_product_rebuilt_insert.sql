-- A template: analytics.py fills the placeholder in braces with the key's order while the table's indexes
-- are maintained (they are filled faster in that order than in the hash aggregate's), and with nothing while
-- they are suspended (rebuilt by sorting anyway).
INSERT INTO analytics.daily_product_sales (date, product_id, orders, revenue, units, transactions, cancelled,
    refunded, batch_id)
SELECT date, product_id, count(*) FILTER (WHERE status = 'completed'),
       coalesce(sum(total_amount) FILTER (WHERE status = 'completed'), 0),
       coalesce(sum(quantity) FILTER (WHERE status = 'completed'), 0), count(*),
       count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'refunded'), :batch_id
FROM refresh_facts GROUP BY date, product_id {order_by};
