-- What is not additive (distinct customers, the region table that carries them, new vs returning), on the dates
-- not rebuilt (31 to 46): the figures move by the customers that start or stop counting on a day (a customer
-- counts while it has a completed transaction there), read off the touched customers' facts of those days. The
-- rebuilt dates are skipped: 47 to 51 recompute their figures, whatever this path would write there.
-- Here, what the batch changes per (date, customer, region as of the sale).
CREATE TEMP TABLE customer_day_delta ON COMMIT DROP AS
SELECT * FROM (SELECT date, customer_id, country, state, coalesce(sum(sign) FILTER (WHERE status = 'completed'), 0),
                      coalesce(sum(sign * total_amount) FILTER (WHERE status = 'completed'), 0),
                      coalesce(sum(sign * quantity) FILTER (WHERE status = 'completed'), 0), sum(sign)
               FROM fact_delta WHERE date NOT IN (SELECT full_date FROM rebuilt_dates)
               GROUP BY date, customer_id, country, state)
              AS d (date, customer_id, country, state, orders, revenue, units, transactions)
WHERE (orders, revenue, units, transactions) <> (0, 0, 0, 0);
