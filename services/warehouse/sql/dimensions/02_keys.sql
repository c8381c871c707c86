-- The keys the batch touches: the merge rebuilds their history and no other.
CREATE TEMP TABLE scd_keys ON COMMIT DROP AS
SELECT DISTINCT {key} AS id FROM {staging} WHERE batch_id = :batch_id;
