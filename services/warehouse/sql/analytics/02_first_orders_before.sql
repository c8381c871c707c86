-- New vs returning customers change on a moved first order's old and new date, and nowhere else. A customer's
-- first completed order ever moves nothing: it had no completed order on any day before, and the days it has
-- one now are in the delta.
INSERT INTO first_order_moves (customer_id, before)
SELECT d.customer_id, cs.first_order_date
FROM summary_delta d LEFT JOIN analytics.customer_summary cs USING (customer_id)
WHERE d.recount OR d.first_added < cs.first_order_date;
