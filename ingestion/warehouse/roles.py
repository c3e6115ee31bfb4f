"""PostgreSQL roles: the writer that lands, streams and builds, and the read-only BI role.

Run by the owner (`sightline db grant-writer`, `sightline db grant-bi`) after `sightline db setup`. Role
names are quoted identifiers; passwords are bound as literals, never formatted into text we print.

Who may do what (DESIGN.md, "Roles on PostgreSQL"):

| role | schemas it may use | what it can do there |
|---|---|---|
| owner (runs setup) | all | DDL: schemas, tables, hypertable policies, two SECURITY DEFINER functions |
| writer | raw, ref (rows) | SELECT, INSERT, UPDATE, DELETE on the tables; EXECUTE the two functions |
| writer | staging, analytics, sqlmesh__*, sqlmesh | USAGE + CREATE: SQLMesh's views, tables, state |
| BI | analytics | SELECT on its views (they read SQLMesh's physical tables with their owner's rights) |

Why the writer may CREATE in SQLMesh's five schemas (and owns what SQLMesh builds there) instead of the
marts being built by the owner: SQLMesh must create, replace and drop its tables and views on every plan,
and PostgreSQL lets only an object's owner do that. The alternative, a separate mart-owner role the writer
can SET ROLE to, gives the writer that role's rights anyway, so it is not less privilege, only more roles.
What the writer owns is derived and rebuilt from `raw` by `sightline transform`; it owns no schema, no raw or
ref table and no function, cannot create a schema (no CREATE on the database), cannot drop, truncate or
alter raw tables, and cannot grant anything on them.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ingestion.warehouse import ddl

WRITER_ROLE = "sightline_writer"
BI_ROLE = "sightline_bi"
# Row privileges of the writer on every table of the data schemas (now and, through default privileges,
# tables a later setup adds). No TRUNCATE, REFERENCES or TRIGGER. DELETE is needed: re-landing a
# partition replaces it.
WRITER_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def _ensure_role(conn: psycopg.Connection, role: str, password: str | None) -> None:
    """Create the role (NOLOGIN without a password), or set its password; never a superuser or creator."""
    r = sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
    limits = sql.SQL("NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    if password:
        # Utility statements take no bind parameters: the literal is quoted by psycopg.
        conn.execute(sql.SQL("{} {} {} LOGIN PASSWORD {}").format(verb, r, limits, sql.Literal(password)))
    elif not exists:
        conn.execute(sql.SQL("CREATE ROLE {} {} NOLOGIN").format(r, limits))
    else:
        conn.execute(sql.SQL("ALTER ROLE {} {}").format(r, limits))


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _existing_schemas(conn: psycopg.Connection, schemas: tuple[str, ...]) -> list[str]:
    rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(schemas),))
    found = {r[0] for r in rows}
    return [s for s in schemas if s in found]


def _require_setup(conn: psycopg.Connection, schemas: tuple[str, ...]) -> None:
    missing = sorted(set(schemas) - set(_existing_schemas(conn, schemas)))
    if missing:
        raise RuntimeError(
            f"schemas {', '.join(missing)} do not exist. Fix: run `sightline db setup` as the owner first"
        )


def _bi_reads_writer_views(conn: psycopg.Connection, writer: str, bi: str) -> None:
    """Views the writer creates in `analytics` from now on are readable by BI (default privileges are per
    creating role), and so are those it created before."""
    w, b, a = sql.Identifier(writer), sql.Identifier(bi), sql.Identifier(ddl.BI_SCHEMA)
    conn.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            w, a, b
        )
    )
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(a, b))


def grant_writer(
    url: str, role: str = WRITER_ROLE, password: str | None = None, *, bi_role: str = BI_ROLE
) -> None:
    """Create/refresh the writer role on the database of `url` (see the module docstring)."""
    r = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        _require_setup(conn, ddl.DATA_SCHEMAS + ddl.SQLMESH_SCHEMAS)
        _ensure_role(conn, role, password)
        db = sql.Identifier(conn.execute("SELECT current_database()").fetchone()[0])
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, r))
        conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(db, r))
        for schema in ddl.DATA_SCHEMAS:
            s = sql.Identifier(schema)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r))
            conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(s, r))
            for kind, privileges in (("TABLES", WRITER_TABLE_PRIVILEGES), ("SEQUENCES", "USAGE, SELECT")):
                conn.execute(
                    sql.SQL("GRANT {} ON ALL {} IN SCHEMA {} TO {}").format(
                        sql.SQL(privileges), sql.SQL(kind), s, r
                    )
                )
                # Tables a later `sightline db setup` (run by this same owner) adds get the same rights.
                conn.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON {} TO {}").format(
                        s, sql.SQL(privileges), sql.SQL(kind), r
                    )
                )
        for function in ddl.OWNER_FUNCTIONS:
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), r))
        for schema in ddl.SQLMESH_SCHEMAS:
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(sql.Identifier(schema), r))
        _hand_over_sqlmesh_objects(conn, role)
        if _role_exists(conn, bi_role):
            _bi_reads_writer_views(conn, role, bi_role)


def _hand_over_sqlmesh_objects(conn: psycopg.Connection, role: str) -> None:
    """Tables and views SQLMesh built earlier as another role (say, the owner before the writer existed)
    become the writer's, so its next plan can replace them."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
        "AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %s) "
        # setup's own view over ops.alerts stays the owner's (setup recreates it)
        "AND n.nspname || '.' || c.relname <> %s",
        (list(ddl.SQLMESH_SCHEMAS), role, ddl.ACTIVE_ALERTS_VIEW),
    ).fetchall()
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for schema, name, kind in rows:
        conn.execute(
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(kinds[kind]), sql.Identifier(schema, name), sql.Identifier(role)
            )
        )


def grant_bi(
    url: str, role: str = BI_ROLE, password: str | None = None, *, writer_role: str = WRITER_ROLE
) -> None:
    """Create/refresh the read-only BI role on the database of `url`: USAGE on `analytics` and SELECT on
    its views, now and future (created by this owner or by the writer); nothing on any other schema."""
    r = sql.Identifier(role)
    a = sql.Identifier(ddl.BI_SCHEMA)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        _require_setup(conn, (ddl.BI_SCHEMA,))
        _ensure_role(conn, role, password)
        db = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), r))
        conn.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(sql.Identifier(db), r))
        # Whatever an earlier version (or a hand) granted this role elsewhere goes away.
        others = [s for s in (*ddl.DATA_SCHEMAS, *ddl.SQLMESH_SCHEMAS, "public") if s != ddl.BI_SCHEMA]
        for schema in _existing_schemas(conn, tuple(others)):
            s = sql.Identifier(schema)
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(s, r))
            conn.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE ALL ON TABLES FROM {}").format(s, r)
            )
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(a, r))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(a, r))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(a, r))
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(a, r)
        )
        if _role_exists(conn, writer_role):
            _bi_reads_writer_views(conn, writer_role, role)
