#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume (docker-entrypoint-initdb.d),
# as the superuser against the entrypoint's temporary server. Changing a password later takes an
# ALTER ROLE; editing .env alone does not reach an initialised volume.
#
# Creates:
#   salesdp           the platform's role, owner of the database salesdp; the migrations
#                     (python -m ops.admin migrate) create the schemas and tables as this role.
#   metabase          Metabase's role, owner of its application database metabase.
#   airflow           Airflow's role, owner of its metadata database airflow.
#   analytics_reader  read-only login for Metabase's data source: CONNECT on salesdp only here.
#                     USAGE on schema analytics and SELECT on its tables and views (plus default
#                     privileges for tables created later) are granted once the schema exists, by every
#                     run of migrate (ops/readers.py); this role gets nothing else.
#
# Passwords come from the container's environment and reach psql through \getenv, so they appear
# neither in this file nor on a command line.
set -e

: "${POSTGRES_APP_PASSWORD:?POSTGRES_APP_PASSWORD must be set}"
: "${METABASE_DB_PASSWORD:?METABASE_DB_PASSWORD must be set}"
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD must be set}"
: "${ANALYTICS_READER_PASSWORD:?ANALYTICS_READER_PASSWORD must be set}"
: "${INGEST_DB_PASSWORD:?INGEST_DB_PASSWORD must be set}"
: "${API_DB_PASSWORD:?API_DB_PASSWORD must be set}"
: "${TRANSFORM_DB_PASSWORD:?TRANSFORM_DB_PASSWORD must be set}"
: "${QUALITY_DB_PASSWORD:?QUALITY_DB_PASSWORD must be set}"
: "${WAREHOUSE_DB_PASSWORD:?WAREHOUSE_DB_PASSWORD must be set}"
: "${RECONCILER_DB_PASSWORD:?RECONCILER_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'EOSQL'
\getenv app_password POSTGRES_APP_PASSWORD
\getenv metabase_password METABASE_DB_PASSWORD
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv reader_password ANALYTICS_READER_PASSWORD
\getenv ingest_password INGEST_DB_PASSWORD
\getenv api_password API_DB_PASSWORD
\getenv transform_password TRANSFORM_DB_PASSWORD
\getenv quality_password QUALITY_DB_PASSWORD
\getenv warehouse_password WAREHOUSE_DB_PASSWORD
\getenv reconciler_password RECONCILER_DB_PASSWORD

CREATE ROLE salesdp LOGIN PASSWORD :'app_password';
CREATE DATABASE salesdp OWNER salesdp;
REVOKE ALL ON DATABASE salesdp FROM PUBLIC;

CREATE ROLE metabase LOGIN PASSWORD :'metabase_password';
CREATE DATABASE metabase OWNER metabase;
REVOKE ALL ON DATABASE metabase FROM PUBLIC;

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE analytics_reader LOGIN PASSWORD :'reader_password';
-- Read-only even if a later grant is too broad.
ALTER ROLE analytics_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE salesdp TO analytics_reader;

-- One login per service; what each may touch is granted by migration 0005 once the tables exist.
CREATE ROLE sdp_ingest LOGIN PASSWORD :'ingest_password';
CREATE ROLE sdp_api LOGIN PASSWORD :'api_password';
CREATE ROLE sdp_transform LOGIN PASSWORD :'transform_password';
CREATE ROLE sdp_quality LOGIN PASSWORD :'quality_password';
CREATE ROLE sdp_warehouse LOGIN PASSWORD :'warehouse_password';
CREATE ROLE sdp_reconciler LOGIN PASSWORD :'reconciler_password';
GRANT CONNECT ON DATABASE salesdp TO sdp_ingest, sdp_api, sdp_transform, sdp_quality, sdp_warehouse, sdp_reconciler;
EOSQL
