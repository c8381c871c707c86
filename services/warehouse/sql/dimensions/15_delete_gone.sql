DELETE FROM {table} WHERE {sk} IN (SELECT sk FROM scd_gone);
