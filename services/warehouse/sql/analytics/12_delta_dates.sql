INSERT INTO affected_dates (full_date) SELECT DISTINCT date FROM fact_delta ON CONFLICT DO NOTHING;
