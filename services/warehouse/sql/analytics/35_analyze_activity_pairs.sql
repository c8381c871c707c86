ANALYZE activity_pairs;
