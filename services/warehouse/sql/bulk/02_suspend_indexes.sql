-- Drops the table's indexes until 03_restore_indexes builds them again (migration 0010).
SELECT ops.suspend_indexes(CAST(:table AS regclass));
