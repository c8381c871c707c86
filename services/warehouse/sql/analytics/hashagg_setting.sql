SELECT current_setting('enable_hashagg');
