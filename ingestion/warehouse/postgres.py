"""PostgreSQL backend, with TimescaleDB when the server has it (`postgresql://user@host:5432/db`).

raw.detections is
- a hypertable (by_range('ts', 1 day), columnstore segmented by camera_id ordered by ts, columnstore and
  retention policies from the site's `warehouse:` settings) when the timescaledb extension can be created;
- otherwise a table declaratively partitioned by range on ts, one partition per site-local day, created on
  demand (in its own short transaction) before rows of a new day land, through the owner's SECURITY
  DEFINER function raw.create_detections_partition (ddl.py), so a writer that owns nothing can land any
  day, a backfill of last year's included, without the CREATE privilege.

Only `setup()` runs DDL; every other connection checks that it ran (`require_setup`).

Rows travel as binary COPY built vectorised from the polars frame (`pg_binary`). The unique key
(camera_id, ts, track_id) is a real constraint here: the COPY is optimistic, inside a savepoint; on a
unique violation the batch's keys go to a temporary table, the already-landed ones are found with one
join, and the rest are copied again.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import polars as pl
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from ingestion.site import Site
from ingestion.warehouse import ddl, pg_binary
from ingestion.warehouse.landing import SqlWarehouse

log = logging.getLogger(__name__)


class PostgresWarehouse(SqlWarehouse):
    backend = "postgres"
    placeholder = "%s"

    def __init__(self, url: str, site: Site, *, use_timescaledb: bool | None = None):
        """`use_timescaledb`: None = use it when available, False = always the plain partitioned table,
        True = require it (setup fails with a clear error if the extension cannot be created)."""
        super().__init__(url, site)
        self.use_timescaledb = use_timescaledb
        self._reconnect()
        self._partitions: set[str] | None = None
        self._hypertable: bool | None = None  # cached: is raw.detections a hypertable?

    # ------------------------------------------------------------------ primitives

    def _execute(self, sql_text: str, params: tuple | list | None = None) -> None:
        self.conn.execute(sql_text, params)

    def _fetch(self, sql_text: str, params: tuple | list | None = None) -> list[tuple]:
        return self.conn.execute(sql_text, params).fetchall()

    def append_batch(self, *args, **kwargs):
        return self._retrying_deadlock(super().append_batch, *args, **kwargs)

    def replace_partition(self, *args, **kwargs):
        return self._retrying_deadlock(super().replace_partition, *args, **kwargs)

    def _retrying_deadlock(self, land, *args, **kwargs):
        """Run a landing transaction again when PostgreSQL aborted it as a deadlock victim: TimescaleDB's
        columnstore policy job locks a chunk exclusively while it compresses it, and a landing that holds
        the same chunk can meet it in the opposite order. The aborted transaction rolled back whole, so a
        new attempt is safe (and idempotent: the ledger decides what lands)."""
        for attempt in range(1, 4):
            try:
                return land(*args, **kwargs)
            except psycopg.errors.DeadlockDetected:
                if attempt == 3 or self._tx_depth:  # inside an outer transaction: the caller decides
                    raise
                log.warning("landing was chosen as a deadlock victim (attempt %d of 3); again", attempt)

    def _lock_timeline(self) -> None:
        # Released at commit; without it two camera-days of one new day both insert its blocks.
        self._execute("SELECT pg_advisory_xact_lock(hashtext('sightline.ref.index_timeline'))")

    def _begin(self) -> None:
        self.conn.execute("BEGIN")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if not self.conn.closed:
            self.conn.execute("ROLLBACK")

    def _copy(self, table: str, columns: list[tuple[str, str]], frame: pl.DataFrame) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(table), sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns)
        )
        with self.conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
            # The queued writer sends from a worker thread, so encoding the next chunk overlaps with the
            # server ingesting the previous one.
            for chunk in pg_binary.encode(frame, columns):
                copy.write(chunk)

    def _insert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        self._copy(table.qualified, table.pg_copy_columns(), frame.select(table.column_names))

    def _upsert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        cols = table.column_names
        self._execute(
            "CREATE TEMP TABLE IF NOT EXISTS __upsert_health (LIKE raw.camera_health) ON COMMIT DROP"
        )
        self._execute("TRUNCATE __upsert_health")
        self._copy("__upsert_health", table.pg_copy_columns(), frame.select(cols))
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.primary_key)
        self._execute(
            f"INSERT INTO {table.qualified} ({', '.join(cols)}) SELECT {', '.join(cols)} "
            f"FROM __upsert_health ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {updates}"
        )

    def _insert_detections(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.height == 0:
            return frame
        try:
            with self.conn.transaction():  # a savepoint: a unique violation undoes only this COPY
                self._insert_frame(ddl.DETECTIONS, frame)
            return frame.clear()
        except psycopg.errors.UniqueViolation:
            log.info("batch overlaps rows already landed: finding them")
        indexed = frame.with_row_index("__row").with_columns(pl.col("__row").cast(pl.Int64))
        self._execute(
            "CREATE TEMP TABLE __batch_keys (__row bigint, camera_id text, ts timestamptz, "
            "track_id bigint) ON COMMIT DROP"
        )
        self._copy(
            "__batch_keys",
            [("__row", "bigint"), ("camera_id", "text"), ("ts", "timestamptz"), ("track_id", "bigint")],
            indexed,
        )
        hits = self._fetch(
            "SELECT k.__row FROM __batch_keys k JOIN raw.detections d USING (camera_id, ts, track_id) "
            "WHERE d.ts BETWEEN %s AND %s",
            (frame["ts"].min(), frame["ts"].max()),
        )
        self._execute("DROP TABLE __batch_keys")
        landed = pl.Series([r[0] for r in hits], dtype=pl.Int64).implode()
        already = indexed.filter(pl.col("__row").is_in(landed)).drop("__row")
        self._insert_frame(ddl.DETECTIONS, indexed.filter(~pl.col("__row").is_in(landed)).drop("__row"))
        return already

    # ------------------------------------------------------------------ tables, partitions, TimescaleDB

    def timescaledb_enabled(self) -> bool:
        """Whether raw.detections is a TimescaleDB hypertable."""
        rows = self._fetch("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if not rows:
            return False
        return bool(
            self._fetch(
                "SELECT 1 FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = 'raw' AND hypertable_name = 'detections'"
            )
        )

    def _try_timescaledb(self) -> bool:
        """Create the extension when the server can load it. Detect, do not assume: the package must be
        installed AND preloaded (CREATE EXTENSION on a server without the preload ends the session)."""
        if self.use_timescaledb is False:
            return False
        available = self._fetch("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        preloaded = "timescaledb" in self._fetch("SHOW shared_preload_libraries")[0][0]
        if not available:
            error = "the extension is not installed on the server"
        elif not preloaded:
            error = "timescaledb is installed but not in shared_preload_libraries"
        else:
            try:
                self._execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                return True
            except psycopg.Error as exc:  # e.g. no privilege to create extensions
                error = str(exc).strip().splitlines()[0]
                if self.conn.closed:
                    self._reconnect()
        if self.use_timescaledb:
            raise RuntimeError(
                f"TimescaleDB was required but cannot be used: {error}. Install it and add "
                "timescaledb to shared_preload_libraries, or connect with use_timescaledb=None"
            )
        log.info("TimescaleDB not used (%s): raw.detections is partitioned by day instead", error)
        return False

    def _reconnect(self) -> None:
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.conn.execute("SET TIME ZONE 'UTC'")

    def _create_tables(self) -> None:
        exists = bool(self._fetch("SELECT to_regclass('raw.detections')")[0][0])
        timescale = self.timescaledb_enabled() if exists else self._try_timescaledb()
        with self._transaction():
            # SQLMesh's schemas too: the writer builds marts in them but may not create schemas.
            for schema in dict.fromkeys(ddl.DATA_SCHEMAS + ddl.SQLMESH_SCHEMAS):
                self._execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table in ddl.RAW_TABLES + ddl.REF_TABLES + ddl.OPS_TABLES:
                suffix = " PARTITION BY RANGE (ts)" if table is ddl.DETECTIONS and not timescale else ""
                self._execute(table.create_sql("postgres", suffix=suffix))
                for statement in table.comment_sql():
                    self._execute(statement)
            for statement in ddl.migration_sql():
                self._execute(statement)
            if timescale:
                self._setup_hypertable()
            for statement in ddl.active_alerts_view_sql("postgres"):
                self._execute(statement)
            for statement in ddl.postgres_function_sql():
                self._execute(statement)
        self._partitions = None
        self._hypertable = timescale

    def _setup_hypertable(self) -> None:
        """Hypertable with 1-day chunks, columnstore and policies (TimescaleDB >= 2.18 API)."""
        wh = self.site.warehouse
        self._execute(
            "SELECT create_hypertable('raw.detections', by_range('ts', INTERVAL '1 day'), "
            "if_not_exists => TRUE)"
        )
        self._execute(
            "ALTER TABLE raw.detections SET (timescaledb.enable_columnstore = true, "
            "timescaledb.segmentby = 'camera_id', timescaledb.orderby = 'ts')"
        )
        # Policies follow the current config: drop and re-add so a changed setting takes effect.
        self._execute("CALL remove_columnstore_policy('raw.detections', if_exists => true)")
        self._execute(
            "CALL add_columnstore_policy('raw.detections', after => %s)",
            (timedelta(days=wh.compress_after_days),),
        )
        self._execute("SELECT remove_retention_policy('raw.detections', if_exists => true)")
        if wh.retention_days is not None:
            self._execute(
                "SELECT add_retention_policy('raw.detections', drop_after => %s)",
                (timedelta(days=wh.retention_days),),
            )

    def _prepare_days(self, days: list[date]) -> None:
        """Plain path only: create the daily partitions these days need, each in its own transaction."""
        if self._hypertable is None:
            self._hypertable = self.timescaledb_enabled()
        if not days or self._hypertable:
            return
        if self._partitions is None:
            self._partitions = {
                r[0]
                for r in self._fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'raw.detections'::regclass"
                )
            }
        for day in days:
            name = f"detections_{day:%Y%m%d}"
            if name in self._partitions:
                continue
            start, end = self.site.day_window(day)
            try:
                self._execute("SELECT raw.create_detections_partition(%s, %s, %s)", (day, start, end))
            except psycopg.errors.DuplicateTable:
                pass  # another writer created it a moment ago
            self._partitions.add(name)

    def _missing_setup(self) -> list[str]:
        missing = super()._missing_setup()
        # From the catalog, not to_regprocedure: that raises instead of answering without USAGE on `raw`.
        executable = {
            name
            for name, allowed in self._fetch(
                "SELECT n.nspname || '.' || p.proname, has_function_privilege(p.oid, 'EXECUTE') "
                "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'raw'"
            )
            if allowed
        }
        return missing + [f for f in ddl.OWNER_FUNCTIONS if f.split("(")[0] not in executable]

    def query(self, sql_text: str, params: tuple | list | None = None) -> pl.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql_text), params)
            if cur.description is None:
                return pl.DataFrame()
            names = [d.name for d in cur.description]
            return pl.DataFrame(cur.fetchall(), schema=names, orient="row", infer_schema_length=None)

    def close(self) -> None:
        self.conn.close()
