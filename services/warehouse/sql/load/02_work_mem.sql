-- For this transaction only: the hash joins and aggregates of a large batch stay in memory.
SET LOCAL work_mem = '256MB';
