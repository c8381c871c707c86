-- What the merge did: versions written, versions removed, facts re-bound.
SELECT (SELECT count(*) FROM scd_changed), (SELECT count(*) FROM scd_gone),
       (SELECT count(*) FROM scd_facts WHERE new_sk IS DISTINCT FROM old_sk);
