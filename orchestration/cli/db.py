"""`sightline db setup` and `sightline db grant-bi`: create the warehouse tables; give BI tools access."""

from __future__ import annotations

import argparse

from orchestration.cli.options import add_warehouse_option

BI_PASSWORD_ENV = "SIGHTLINE_BI_PASSWORD"


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="warehouse administration: create tables, grant BI access")
    sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    setup = sub.add_parser(
        "setup",
        help="create the raw/ref/analytics schemas and raw tables; reload ref tables",
        description="Idempotent: creates what is missing and reloads ref.cameras, ref.zones, "
        "ref.site and the index timeline of existing days from the site config.",
    )
    add_warehouse_option(setup)
    setup.set_defaults(func=run_setup)
    grant = sub.add_parser(
        "grant-bi",
        help="PostgreSQL: a read-only role for BI tools on the analytics schema only",
        description="Creates the role if needed (LOGIN with the password from $SIGHTLINE_BI_PASSWORD if set, "
        "else NOLOGIN for you to grant to users), grants USAGE on schema analytics and SELECT on its "
        "tables and views, now and in the future (default privileges for tables this user creates), "
        "and revokes everything on raw, ref and public. Not applicable to DuckDB (a file has no roles).",
    )
    add_warehouse_option(grant)
    grant.add_argument("--role", default="sightline_bi", help="role name (default sightline_bi)")
    grant.set_defaults(func=run_grant_bi)


def run_setup(args: argparse.Namespace) -> int:
    from ingestion.warehouse import connect

    with connect(args.warehouse) as wh:
        wh.setup()
        mode = "embedded DuckDB"
        if wh.backend == "postgres":
            mode = (
                "TimescaleDB hypertable"
                if wh.timescaledb_enabled()
                else "PostgreSQL, raw.detections partitioned by day"
            )
        print(
            f"warehouse ready ({mode}): schemas raw, ref, analytics; "
            f"{len(wh.site.cameras)} cameras and {len(wh.site.zones)} zones loaded into ref"
        )
    return 0


def run_grant_bi(args: argparse.Namespace) -> int:
    import os

    from ingestion.warehouse import resolve_url

    url = resolve_url(args.warehouse)
    if url.startswith("duckdb://"):
        print(
            "grant-bi is not applicable to DuckDB: an embedded file has no roles. Give BI tools read-only "
            "access by opening the file read-only (duckdb.connect(path, read_only=True)) or a copy of it."
        )
        return 0
    grant_bi(url, args.role, os.environ.get(BI_PASSWORD_ENV))
    login = f"LOGIN, password from ${BI_PASSWORD_ENV}" if os.environ.get(BI_PASSWORD_ENV) else "NOLOGIN"
    print(f"role {args.role} ({login}): SELECT on analytics (now and future tables), "
          "no access to raw, ref, public")
    return 0


def grant_bi(url: str, role: str, password: str | None) -> None:
    """Create/refresh the read-only BI role on the database of `url` (identifiers quoted, password bound)."""
    import psycopg
    from psycopg import sql

    r = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
        if password:
            # Utility statements take no bind parameters: the literal is quoted by psycopg.
            conn.execute(sql.SQL("{} {} LOGIN PASSWORD {}").format(verb, r, sql.Literal(password)))
        elif not exists:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(r))
        db = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), r))
        conn.execute("CREATE SCHEMA IF NOT EXISTS analytics")
        for schema in ("raw", "ref", "public"):
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
                s = sql.Identifier(schema)
                conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r))
                conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(s, r))
                conn.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE ALL ON TABLES FROM {}").format(s, r)
                )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA analytics TO {}").format(r))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO {}").format(r))
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO {}").format(r)
        )
