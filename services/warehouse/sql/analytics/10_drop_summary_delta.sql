DROP TABLE summary_delta;
