#!/bin/sh
# First start of the TimescaleDB container (runs as the image's superuser, `postgres`):
# - `sightline`: the warehouse, with the TimescaleDB extension. Its schemas, tables and roles come from the
#   one-shot `sightline_setup` service (`sightline db setup`, `grant-bi`, `grant-writer`). PUBLIC may not
#   even connect: the roles get CONNECT from those grants.
# - `dagster`: Dagster's storage, owned by its own login role `dagster`, so the webserver and daemon do
#   not connect as the superuser.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v dagster_password="$DAGSTER_PG_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE dagster OWNER dagster;
CREATE DATABASE sightline;
REVOKE ALL ON DATABASE sightline FROM PUBLIC;
\connect sightline
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
