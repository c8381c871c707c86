SELECT count(*) FROM partial_dates;
