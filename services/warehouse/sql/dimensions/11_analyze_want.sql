ANALYZE scd_want;
