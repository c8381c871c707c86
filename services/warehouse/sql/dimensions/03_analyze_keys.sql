-- Temporary tables are never analyzed by autovacuum.
ANALYZE scd_keys;
