-- What is stored for them.
CREATE TEMP TABLE scd_have ON COMMIT DROP AS
SELECT d.{sk} AS sk, d.{key} AS id, d.valid_from, d.valid_to, d.is_inferred, {d_tracked}
FROM {table} d JOIN scd_keys k ON k.id = d.{key};
