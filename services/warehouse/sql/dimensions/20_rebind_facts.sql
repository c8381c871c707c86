-- A fact keeps the batch_id of the sales batch whose record it holds (its lineage, and what a replayed older
-- sales batch is compared with).
UPDATE processed.fact_sales f SET {sk} = m.new_sk
FROM scd_facts m
WHERE m.new_sk IS DISTINCT FROM m.old_sk AND f.sale_key = m.sale_key AND f.{sk} IS DISTINCT FROM m.new_sk;
