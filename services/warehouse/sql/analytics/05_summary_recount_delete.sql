DELETE FROM analytics.customer_summary WHERE customer_id IN (SELECT customer_id FROM summary_delta WHERE recount);
