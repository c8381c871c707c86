INSERT INTO affected_dates (full_date)
SELECT before FROM first_order_moves WHERE before IS NOT NULL
UNION SELECT after FROM first_order_moves WHERE after IS NOT NULL
ON CONFLICT DO NOTHING;
