-- An inferred member (the key's only row, sales/02_inferred_customers) becomes the key's first version.
UPDATE scd_want w SET sk = h.sk FROM scd_have h
WHERE h.id = w.id AND h.is_inferred AND w.is_first;
