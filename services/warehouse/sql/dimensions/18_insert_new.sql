-- New versions.
WITH inserted AS (
    INSERT INTO {table} ({key}, {tracked}, valid_from, valid_to, is_current, is_inferred, batch_id
        {derived_columns})
    SELECT w.id, {w_tracked}, w.valid_from, w.valid_to, w.valid_to = '9999-12-31 00:00:00+00'::timestamptz, false,
           :batch_id {derived_values}
    FROM scd_want w WHERE w.sk IS NULL
    RETURNING {sk})
INSERT INTO scd_changed SELECT {sk} FROM inserted;
