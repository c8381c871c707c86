-- The old facts the update left alone leave the delta: nothing about them moved.
DELETE FROM fact_delta o
WHERE o.sign = -1 AND NOT EXISTS (SELECT 1 FROM fact_delta n WHERE n.sign = 1 AND n.sale_key = o.sale_key);
