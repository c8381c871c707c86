-- Facts re-bound point in time, as sales/07_bind_batch binds them: the history has no gaps, so the version
-- holding transaction_ts is the one whose [bind_from, valid_to) holds it, bind_from being -infinity for a key's
-- first version (a sale before the first version binds to it).
UPDATE scd_facts m SET new_sk = b.sk
FROM (SELECT d.{sk} AS sk, d.{key} AS id, d.valid_to,
             CASE WHEN lag(valid_from) OVER (PARTITION BY d.{key} ORDER BY valid_from) IS NULL
                  THEN '-infinity'::timestamptz ELSE valid_from END AS bind_from
      FROM {table} d JOIN scd_keys k ON k.id = d.{key}) b
WHERE b.id = m.id AND m.transaction_ts >= b.bind_from AND m.transaction_ts < b.valid_to;
