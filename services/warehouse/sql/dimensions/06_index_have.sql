CREATE INDEX ON scd_have (sk);
