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

A Python model's DataFrame (analytics.track_links: ~100k rows a day at 4 cameras) reaches PostgreSQL
through a temporary table filled with psycopg2's `execute_values`, not SQLMesh's default of one sqlglot
`VALUES` expression per 400 rows: rendering those took minutes of Python per day built, and it wrote a
missing timestamp as `CAST('NaT' AS TIMESTAMP)`, which PostgreSQL rejects (an empty day's placeholder row).

Imported only where SQLMesh is (ingestion.transform builds the config).
"""

from __future__ import annotations

import os
import re
import typing as t
import uuid
import warnings

from sqlglot import exp
from sqlmesh.core.config import PostgresConnectionConfig
from sqlmesh.core.dialect import to_schema
from sqlmesh.core.engine_adapter.postgres import PostgresEngineAdapter
from sqlmesh.core.engine_adapter.shared import SourceQuery


class ExistingSchemaPostgresAdapter(PostgresEngineAdapter):
    """PostgresEngineAdapter that does not ask to create a schema that exists."""

    def create_schema(
        self,
        schema_name: t.Any,
        ignore_if_exists: bool = True,
        warn_on_error: bool = True,
        properties: list[exp.Expr] | None = None,
    ) -> None:
        name = to_schema(schema_name).db
        if ignore_if_exists and name and self._schema_exists(name):
            return
        super().create_schema(schema_name, ignore_if_exists, warn_on_error, properties)

    def _df_to_source_queries(
        self,
        df: t.Any,
        target_columns_to_types: dict[str, exp.DataType],
        batch_size: int,
        target_table: t.Any,
        source_columns: list[str] | None = None,
    ) -> list[SourceQuery]:
        """One source query over a session-temporary table holding the DataFrame's rows (NaN/NaT as NULL),
        loaded on first use inside the insert's transaction and dropped after it."""
        import pandas as pd
        from psycopg2.extras import execute_values

        assert isinstance(df, pd.DataFrame)
        columns = list(source_columns or target_columns_to_types)
        frame = df[columns]
        temp = exp.to_identifier(f"sightline_df_{uuid.uuid4().hex[:16]}", quoted=True).sql("postgres")
        names = [exp.to_identifier(c, quoted=True).sql("postgres") for c in columns]
        loaded = False

        def query() -> exp.Query:
            nonlocal loaded
            if not loaded:
                definition = ", ".join(
                    f"{n} {target_columns_to_types[c].sql('postgres')}"
                    for n, c in zip(names, columns, strict=True)
                )
                self.execute(f"CREATE TEMPORARY TABLE {temp} ({definition})")
                rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
                execute_values(
                    self.cursor, f"INSERT INTO {temp} ({', '.join(names)}) VALUES %s", rows, page_size=10_000
                )
                loaded = True
            return exp.select(*names).from_(temp)

        def cleanup() -> None:
            if loaded:
                self.execute(f"DROP TABLE IF EXISTS {temp}")

        return [SourceQuery(query_factory=query, cleanup_func=cleanup)]

    def _schema_exists(self, name: str) -> bool:
        query = (
            exp.select("1")
            .from_(exp.table_("pg_namespace", db="pg_catalog"))
            .where(exp.column("nspname").eq(exp.Literal.string(name)))
        )
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


# Models (and days of one model) SQLMesh builds at once on PostgreSQL, each on its own connection. Two: on
# PostgreSQL 15 an INSERT ... SELECT runs on one core, so a second build (another day, or a model that does
# not wait for the first, like heatmap_hourly beside sessions) uses the server's second core, and SQLMesh's
# own Python (rendering, audits) overlaps with SQL instead of waiting for it. SIGHTLINE_PG_CONCURRENT_TASKS
# overrides it (1: one statement at a time; more on a bigger server).
DEFAULT_CONCURRENT_TASKS = 2
# SQLMesh silences pandas' "only supports SQLAlchemy connectable" warning around its own read_sql_query (a
# psycopg2 connection works) with warnings.catch_warnings, which is not thread-safe: with two tasks, one
# thread's exit restores the filters while the other reads, and the warning leaks. Silenced process-wide.
warnings.filterwarnings(
    "ignore", message=".*pandas only supports SQLAlchemy connectable", category=UserWarning
)


def concurrent_tasks() -> int:
    """How many models or days SQLMesh builds at once on PostgreSQL (SIGHTLINE_PG_CONCURRENT_TASKS)."""
    value = os.environ.get("SIGHTLINE_PG_CONCURRENT_TASKS", str(DEFAULT_CONCURRENT_TASKS)).strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"SIGHTLINE_PG_CONCURRENT_TASKS={value!r}: not a positive whole number. Fix: e.g. 2 (about the "
            "PostgreSQL server's cores; 1 builds one model at a time)"
        )
    return int(value)


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
