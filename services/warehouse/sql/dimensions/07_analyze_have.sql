ANALYZE scd_have;
