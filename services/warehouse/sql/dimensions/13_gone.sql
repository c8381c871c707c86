-- The stored versions no longer wanted (merged into their predecessor).
CREATE TEMP TABLE scd_gone ON COMMIT DROP AS
SELECT h.sk FROM scd_have h WHERE NOT EXISTS (SELECT 1 FROM scd_want w WHERE w.sk = h.sk);
