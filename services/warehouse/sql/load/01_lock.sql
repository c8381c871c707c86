-- One dataset's advisory lock (its key from load.LOCK_KEYS), held until the load's transaction ends.
SELECT pg_advisory_xact_lock(:key);
