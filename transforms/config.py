"""SQLMesh configuration of the Sightline project (`sqlmesh -p transforms plan`).

A Python config rather than config.yaml because two things are computed: the connection comes from
SIGHTLINE_WAREHOUSE_URL (or the PG* variables for the `postgres` gateway; the default gateway follows the
URL's scheme, `duckdb` when unset) and the thresholds, timezone and schedule come from the site config
(SIGHTLINE_SITE, default site.yaml) as SQLMesh variables. Credentials never live in this file.
"""

from ingestion.transform import sqlmesh_config

config = sqlmesh_config()
