-- The rows the planner believes a table holds (0 for one never analyzed).
SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = CAST(:table AS regclass);
