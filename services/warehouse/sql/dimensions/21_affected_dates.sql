-- The dates whose analytics moved: a fact bound elsewhere, or its version's attributes changed.
INSERT INTO affected_dates (full_date)
SELECT DISTINCT dd.full_date
FROM scd_facts m JOIN processed.dim_date dd ON dd.date_key = m.date_key
WHERE m.new_sk IS DISTINCT FROM m.old_sk OR m.new_sk IN (SELECT sk FROM scd_changed)
ON CONFLICT DO NOTHING;
