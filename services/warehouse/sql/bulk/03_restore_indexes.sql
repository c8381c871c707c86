SELECT ops.restore_indexes(CAST(:table AS regclass));
