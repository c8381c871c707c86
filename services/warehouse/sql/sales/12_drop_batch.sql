DROP TABLE batch_facts;
