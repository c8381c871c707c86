DROP TABLE IF EXISTS scd_keys, scd_want, scd_have, scd_facts, scd_gone, scd_changed;
