-- How many rows 25 writes: whether daily_product_sales's indexes are rebuilt rather than maintained (bulk.py).
SELECT count(*) FROM refresh_facts;
