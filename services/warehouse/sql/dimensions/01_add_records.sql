-- Files 01 to 21 are templates: dimensions.py fills the names in braces from its constant Dimension specs.
-- The batch's records join the source records. The same (key, updated_at) from another batch with other
-- attributes: the batch received later wins, whatever order the loads run in.
INSERT INTO {records} AS r ({key}, updated_at, {tracked}, batch_id)
SELECT {key}, updated_at, {tracked}, batch_id FROM {staging} WHERE batch_id = :batch_id
ON CONFLICT ({key}, updated_at) DO UPDATE
SET {set_excluded}, batch_id = EXCLUDED.batch_id
WHERE ({r_tracked}) IS DISTINCT FROM ({excluded_tracked})
  AND coalesce((SELECT b.received_at FROM ops.batches b WHERE b.batch_id = EXCLUDED.batch_id)
               >= (SELECT b.received_at FROM ops.batches b WHERE b.batch_id = r.batch_id), true);
