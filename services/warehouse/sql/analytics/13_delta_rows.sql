-- Whether the delta is large (BulkPolicy.min_rows): only a large one rebuilds dates (14).
SELECT count(*) FROM fact_delta;
