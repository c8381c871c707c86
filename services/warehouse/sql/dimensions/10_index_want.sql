CREATE INDEX ON scd_want (sk);
