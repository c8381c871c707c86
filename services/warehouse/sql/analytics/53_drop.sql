DROP TABLE rebuilt_dates, partial_dates, refresh_facts;
