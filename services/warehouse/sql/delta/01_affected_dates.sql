-- The dates whose analytics a load moves: every step that changes facts or what they are grouped by adds to it.
CREATE TEMP TABLE IF NOT EXISTS affected_dates (full_date date PRIMARY KEY) ON COMMIT DROP;
