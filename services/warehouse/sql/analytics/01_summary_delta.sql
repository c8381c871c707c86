-- customer_summary by difference (sales loads only), files 01 to 10. Per customer, what the batch's fact
-- changes do to its completed orders: adding completed facts moves the sums and can only move the first order
-- earlier and the last later; a customer that lost a completed fact (refunded, cancelled, replaced) is
-- recounted from its facts.
CREATE TEMP TABLE summary_delta ON COMMIT DROP AS
SELECT customer_id,
       coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0) AS orders,
       coalesce(sum(sign * coalesce(total_amount, 0)) FILTER (WHERE status = 'completed'), 0) AS revenue,
       coalesce(sum(sign * coalesce(quantity, 0)) FILTER (WHERE status = 'completed'), 0) AS units,
       min(date) FILTER (WHERE status = 'completed' AND sign = 1) AS first_added,
       max(date) FILTER (WHERE status = 'completed' AND sign = 1) AS last_added,
       bool_or(status = 'completed' AND sign = -1) AS recount
FROM fact_delta WHERE customer_id IS NOT NULL
GROUP BY customer_id
HAVING bool_or(status = 'completed');
