-- How many facts the batch may add: whether fact_sales's indexes are rebuilt rather than maintained (bulk.py).
SELECT count(*) FROM staging.sales WHERE batch_id = :batch_id;
