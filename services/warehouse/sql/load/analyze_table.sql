-- Fresh planner statistics of a table a load changed much of, taken as its owner (migration 0010's function).
SELECT ops.analyze_table(CAST(:table AS regclass));
