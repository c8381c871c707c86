-- Temporary tables are never analyzed by autovacuum.
ANALYZE batch_facts;
