#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume (docker-entrypoint-initdb.d),
# as the superuser against the entrypoint's temporary server. Changing a password later takes an
# ALTER ROLE; editing .env alone does not reach an initialised volume.
#
# Creates:
#   salesdp           the platform's role, owner of the database salesdp; the migrations
#                     (python -m shared.admin migrate) create the schemas and tables as this role.
#   metabase          Metabase's role, owner of its application database metabase.
#   analytics_reader  read-only login for Metabase's data source: CONNECT on salesdp only here.
#                     USAGE on schema analytics and SELECT on its tables and views (plus default
#                     privileges for tables created later) are granted once the schema exists, by the
#                     migration 0002; this role gets nothing else.
#
# Passwords come from the container's environment and reach psql through \getenv, so they appear
# neither in this file nor on a command line.
set -e

: "${POSTGRES_APP_PASSWORD:?POSTGRES_APP_PASSWORD must be set}"
: "${METABASE_DB_PASSWORD:?METABASE_DB_PASSWORD must be set}"
: "${ANALYTICS_READER_PASSWORD:?ANALYTICS_READER_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'EOSQL'
\getenv app_password POSTGRES_APP_PASSWORD
\getenv metabase_password METABASE_DB_PASSWORD
\getenv reader_password ANALYTICS_READER_PASSWORD

CREATE ROLE salesdp LOGIN PASSWORD :'app_password';
CREATE DATABASE salesdp OWNER salesdp;
REVOKE ALL ON DATABASE salesdp FROM PUBLIC;

CREATE ROLE metabase LOGIN PASSWORD :'metabase_password';
CREATE DATABASE metabase OWNER metabase;
REVOKE ALL ON DATABASE metabase FROM PUBLIC;

CREATE ROLE analytics_reader LOGIN PASSWORD :'reader_password';
-- Read-only even if a later grant is too broad.
ALTER ROLE analytics_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE salesdp TO analytics_reader;
EOSQL
