SELECT count(*) FROM affected_dates;
