-- Every load from here on. Temporary tables are never analyzed by autovacuum; without statistics the planner
-- takes a batch's million rows for a few thousand and sorts where it should hash.
ANALYZE fact_delta;
