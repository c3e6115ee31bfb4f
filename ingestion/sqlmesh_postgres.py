"""SQLMesh's PostgreSQL connection for a role that may not create schemas (the writer role).

SQLMesh runs `CREATE SCHEMA IF NOT EXISTS` for its state schema and every physical and view schema before
it builds. PostgreSQL checks the database-level CREATE privilege before it looks whether the schema exists,
so for the writer, which must not be able to create schemas, the statement fails, and inside SQLMesh's
state-migration transaction the failure aborts everything after it. `sightline db setup` creates those
schemas (ingestion.warehouse.ddl.SQLMESH_SCHEMAS); this adapter skips the statement for a schema that
already exists and issues it otherwise, so the owner and a fresh database behave exactly as before.

Every connection SQLMesh opens also gets the session settings of `session_settings()`: a build sorts a
day of detections per (camera, track) several times, and PostgreSQL's defaults (work_mem 4MB: sorts and
hashes spill to disk; JIT compiling each large model query: fixed seconds per model) are tuned for
OLTP, not for these few heavy queries.

Imported only where SQLMesh is (ingestion.transform builds the config).
"""

from __future__ import annotations

import os
import re
import typing as t

from sqlglot import exp
from sqlmesh.core.config import PostgresConnectionConfig
from sqlmesh.core.dialect import to_schema
from sqlmesh.core.engine_adapter.postgres import PostgresEngineAdapter


class ExistingSchemaPostgresAdapter(PostgresEngineAdapter):
    """PostgresEngineAdapter that does not ask to create a schema that exists."""

    def create_schema(self, schema_name: t.Any, ignore_if_exists: bool = True, warn_on_error: bool = True,
                      properties: list[exp.Expr] | None = None) -> None:
        name = to_schema(schema_name).db
        if ignore_if_exists and name and self._schema_exists(name):
            return
        super().create_schema(schema_name, ignore_if_exists, warn_on_error, properties)

    def _schema_exists(self, name: str) -> bool:
        query = (exp.select("1").from_(exp.table_("pg_namespace", db="pg_catalog"))
                 .where(exp.column("nspname").eq(exp.Literal.string(name))))
        return self.fetchone(query) is not None


# Defaults for the SQLMesh sessions; SIGHTLINE_PG_WORK_MEM overrides work_mem (e.g. 64MB on a small server).
DEFAULT_WORK_MEM = "256MB"


def session_settings() -> dict[str, str]:
    """SET statements for every SQLMesh connection: per-session only, the server's defaults stay."""
    work_mem = os.environ.get("SIGHTLINE_PG_WORK_MEM", DEFAULT_WORK_MEM).strip()
    if not re.fullmatch(r"\d+\s*(kB|MB|GB)?", work_mem):
        raise ValueError(
            f"SIGHTLINE_PG_WORK_MEM={work_mem!r}: not a PostgreSQL memory size. Fix: a number with kB, MB "
            "or GB, e.g. 256MB"
        )
    return {"work_mem": work_mem, "jit": "off"}


class SightlinePostgresConnectionConfig(PostgresConnectionConfig):
    """The `postgres` gateway's connection: PostgresConnectionConfig with the adapter above and the
    session settings."""

    @property
    def _engine_adapter(self) -> type[PostgresEngineAdapter]:
        return ExistingSchemaPostgresAdapter

    @property
    def _cursor_init(self) -> t.Callable[[t.Any], None] | None:
        role_init = super()._cursor_init
        settings = session_settings()

        def init(cursor: t.Any) -> None:
            if role_init:
                role_init(cursor)
            for name, value in settings.items():
                cursor.execute(f"SET {name} = %s", (value,))

        return init
