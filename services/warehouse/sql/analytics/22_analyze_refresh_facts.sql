ANALYZE refresh_facts;
