-- The versions whose attributes the merge changes or writes: their facts' analytics move (21, 22).
CREATE TEMP TABLE scd_changed (sk bigint PRIMARY KEY) ON COMMIT DROP;
