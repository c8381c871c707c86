-- Their facts are unbound until 20_rebind_facts binds them again.
UPDATE processed.fact_sales SET {sk} = NULL WHERE {sk} IN (SELECT sk FROM scd_gone);
