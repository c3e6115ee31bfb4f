"""`sightline db setup | grant-writer | grant-bi`: the owner's commands. Setup is the only place DDL runs;
the grants create the roles everything else connects as (ingestion/warehouse/roles.py)."""

from __future__ import annotations

import argparse

from orchestration.cli.options import add_site_option, add_warehouse_option

BI_PASSWORD_ENV = "SIGHTLINE_BI_PASSWORD"
WRITER_PASSWORD_ENV = "SIGHTLINE_WRITER_PASSWORD"
_NOT_FOR_DUCKDB = "is not applicable to DuckDB: an embedded file has no roles."


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="warehouse administration (as the owner): tables, roles")
    sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    setup = sub.add_parser(
        "setup",
        help="create schemas, tables and functions (the only DDL); reload ref tables",
        description="Idempotent; run it as the warehouse owner. Creates what is missing (schemas raw, ref, "
        "staging, analytics and SQLMesh's, the raw and ref tables, on PostgreSQL the TimescaleDB hypertable "
        "or the daily partitioning and its functions) and reloads ref.cameras, ref.zones, ref.site and the "
        "index timeline of existing days from the site config. Landing, streaming and Dagster runs create "
        "nothing: on PostgreSQL they fail until this has run (the embedded DuckDB file sets itself up).",
    )
    add_warehouse_option(setup)
    add_site_option(setup)
    setup.set_defaults(func=run_setup)

    writer = sub.add_parser(
        "grant-writer",
        help="PostgreSQL: the role that lands, streams and builds marts, owning no schema or raw table",
        description=f"Creates the role if needed (LOGIN with the password from ${WRITER_PASSWORD_ENV} if "
        "set, else NOLOGIN), with row privileges on the raw and ref tables, EXECUTE on setup's partition "
        "and analyze functions, and CREATE on exactly SQLMesh's schemas (staging, analytics, sqlmesh__*, "
        "sqlmesh) so it can build the marts. It cannot create schemas or drop, truncate or alter raw "
        "tables. Run after `sightline db setup`. Not applicable to DuckDB (a file has no roles).",
    )
    add_warehouse_option(writer)
    writer.add_argument("--role", default="sightline_writer", help="role name (default sightline_writer)")
    writer.add_argument(
        "--bi-role",
        default="sightline_bi",
        help="BI role that may read the views the writer builds, if it exists (sightline_bi)",
    )
    writer.set_defaults(func=run_grant_writer)

    grant = sub.add_parser(
        "grant-bi",
        help="PostgreSQL: a read-only role for BI tools on the analytics schema only",
        description=f"Creates the role if needed (LOGIN with the password from ${BI_PASSWORD_ENV} if set, "
        "else NOLOGIN for you to grant to users), grants USAGE on schema analytics and SELECT on its "
        "views, now and in the future (those this owner and the writer role create), and revokes "
        "everything on raw, ref, staging, SQLMesh's schemas and public. Not applicable to DuckDB.",
    )
    add_warehouse_option(grant)
    grant.add_argument("--role", default="sightline_bi", help="role name (default sightline_bi)")
    grant.add_argument(
        "--writer-role",
        default="sightline_writer",
        help="writer role whose future views BI may read, if it exists (sightline_writer)",
    )
    grant.set_defaults(func=run_grant_bi)


def run_setup(args: argparse.Namespace) -> int:
    from ingestion.site import load_site
    from ingestion.warehouse import connect

    with connect(args.warehouse, load_site(args.site)) as wh:
        wh.setup()
        mode = "embedded DuckDB"
        if wh.backend == "postgres":
            mode = (
                "TimescaleDB hypertable"
                if wh.timescaledb_enabled()
                else "PostgreSQL, raw.detections partitioned by day"
            )
        print(
            f"warehouse ready ({mode}): schemas raw, ref, staging, analytics; "
            f"{len(wh.site.cameras)} cameras and {len(wh.site.zones)} zones loaded into ref"
        )
    return 0


def run_grant_writer(args: argparse.Namespace) -> int:
    import os

    from ingestion.warehouse import resolve_url
    from ingestion.warehouse.roles import grant_writer

    url = resolve_url(args.warehouse)
    if url.startswith("duckdb://"):
        print(f"grant-writer {_NOT_FOR_DUCKDB} Landing processes simply open the file.")
        return 0
    password = os.environ.get(WRITER_PASSWORD_ENV)
    grant_writer(url, args.role, password, bi_role=args.bi_role)
    login = f"LOGIN, password from ${WRITER_PASSWORD_ENV}" if password else "NOLOGIN"
    print(
        f"role {args.role} ({login}): rows of raw and ref, builds marts in SQLMesh's schemas; "
        "owns no schema or raw table, cannot create schemas"
    )
    return 0


def run_grant_bi(args: argparse.Namespace) -> int:
    import os

    from ingestion.warehouse import resolve_url
    from ingestion.warehouse.roles import grant_bi

    url = resolve_url(args.warehouse)
    if url.startswith("duckdb://"):
        print(
            f"grant-bi {_NOT_FOR_DUCKDB} Give BI tools read-only access by opening the file read-only "
            "(duckdb.connect(path, read_only=True)) or a copy of it."
        )
        return 0
    password = os.environ.get(BI_PASSWORD_ENV)
    grant_bi(url, args.role, password, writer_role=args.writer_role)
    login = f"LOGIN, password from ${BI_PASSWORD_ENV}" if password else "NOLOGIN"
    print(
        f"role {args.role} ({login}): SELECT on analytics (now and future views), "
        "no access to raw, ref, staging or SQLMesh's schemas"
    )
    return 0
