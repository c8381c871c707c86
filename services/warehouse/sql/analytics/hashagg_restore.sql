SELECT set_config('enable_hashagg', :before, true);
