-- Versions kept are updated where their period or attributes changed. With the unwanted ones gone, no
-- intermediate state of this statement overlaps: every kept version starts where it did.
WITH updated AS (
    UPDATE {table} d
    SET valid_from = w.valid_from, valid_to = w.valid_to,
        is_current = w.valid_to = '9999-12-31 00:00:00+00'::timestamptz,
        {set_w}, is_inferred = false, batch_id = :batch_id{derived_set}
    FROM scd_want w JOIN scd_have h ON h.sk = w.sk
    WHERE d.{sk} = w.sk
      AND (h.valid_from, h.valid_to, h.is_inferred, {h_tracked})
          IS DISTINCT FROM (w.valid_from, w.valid_to, false, {w_tracked})
    RETURNING d.{sk} AS sk, h.is_inferred OR ({h_tracked}) IS DISTINCT FROM ({w_tracked}) AS changed)
INSERT INTO scd_changed SELECT sk FROM updated WHERE changed;
