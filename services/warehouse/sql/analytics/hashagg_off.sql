-- For this transaction only (the third argument): grouping by sorting instead of hashing.
SELECT set_config('enable_hashagg', 'off', true);
