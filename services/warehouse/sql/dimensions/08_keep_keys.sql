-- A stored version still wanted keeps its surrogate key.
UPDATE scd_want w SET sk = h.sk FROM scd_have h
WHERE h.id = w.id AND h.valid_from = w.valid_from AND NOT h.is_inferred;
