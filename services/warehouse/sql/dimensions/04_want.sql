-- The wanted history of those keys: a record differing from its predecessor starts a version, which lasts until
-- the next one starts (the last one open to 9999-12-31).
CREATE TEMP TABLE scd_want ON COMMIT DROP AS
SELECT p.id, p.updated_at AS valid_from,
       coalesce(lead(p.updated_at) OVER (PARTITION BY p.id ORDER BY p.updated_at),
                '9999-12-31 00:00:00+00'::timestamptz) AS valid_to,
       row_number() OVER (PARTITION BY p.id ORDER BY p.updated_at) = 1 AS is_first,
       {tracked}, NULL::bigint AS sk
FROM (SELECT r.{key} AS id, r.updated_at, {r_tracked},
             row_number() OVER w = 1 OR ({lag_tracked}) IS DISTINCT FROM ({r_tracked}) AS starts
      FROM {records} r JOIN scd_keys k ON k.id = r.{key}
      WINDOW w AS (PARTITION BY r.{key} ORDER BY r.updated_at)) p
WHERE p.starts;
