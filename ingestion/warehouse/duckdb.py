"""DuckDB backend: the embedded default (`duckdb:///path/to/file.duckdb`, `duckdb:///:memory:`).

Frames land through Arrow: the polars frame is registered as a view (zero copy) and inserted with one
INSERT ... SELECT. raw.detections has no unique index here (an ART index over every detection costs more
than it protects in a single-writer embedded file); the unique key is enforced by the landing layer
instead, with an anti-join against the rows already stored in the batch's time range.

A DuckDB file has one writer process at a time. `sightline stream` lets go of the file between
micro-batches, and opening it here waits (up to `SIGHTLINE_DUCKDB_LOCK_WAIT` seconds, default 30) while
another process holds it, so the stream, Dagster runs and checks take turns instead of failing.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import duckdb
import polars as pl

from ingestion.redact import redact_url
from ingestion.site import Site
from ingestion.warehouse import ddl
from ingestion.warehouse.landing import SqlWarehouse

_view_ids = itertools.count()
# DuckDB's registry of open files races when threads of one process open and close the same file at once
# ("Unique file handle conflict"): connect and close one at a time.
_open_close = threading.Lock()


def lock_wait_seconds() -> float:
    return float(os.environ.get("SIGHTLINE_DUCKDB_LOCK_WAIT", "30"))


HANDOVER_FRESH_SECONDS = 2.0  # a waiter renews its request at least this often (its retry delay is <= 0.5 s)


def handover_marker(path: str) -> Path:
    """The file a process waiting for the lock touches, so that a writer that keeps the file across several
    micro-batches (`sightline stream` under a backlog) lets go of it at its next batch boundary."""
    return Path(f"{path}.wanted")


def handover_requested(path: str) -> bool:
    """Another process is waiting for the file now (a request it has not renewed lately is stale)."""
    try:
        return time.time() - handover_marker(path).stat().st_mtime < HANDOVER_FRESH_SECONDS
    except OSError:
        return False


def open_duckdb(path: str, *, wait: float | None = None, **options) -> duckdb.DuckDBPyConnection:
    """duckdb.connect(path, **options), waiting up to `wait` seconds (default: lock_wait_seconds()) while
    another process holds the file's lock (asking it to hand the file over, see `handover_marker`); other
    errors are raised at once."""
    deadline = time.monotonic() + (lock_wait_seconds() if wait is None else wait)
    delay = 0.02
    marker = handover_marker(path) if path != ":memory:" else None
    while True:
        try:
            with _open_close:
                con = duckdb.connect(path, **options)
            if marker is not None and delay > 0.02:  # it had to wait: its request is served
                marker.unlink(missing_ok=True)
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            if marker is not None:
                try:
                    marker.touch()
                except OSError:  # a read-only directory: wait without asking
                    pass
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


class DuckDBWarehouse(SqlWarehouse):
    backend = "duckdb"
    placeholder = "?"
    auto_setup = True  # an embedded file has no roles: whoever lands may create what is missing

    def __init__(self, url: str, site: Site):
        super().__init__(url, site)
        if not url.startswith("duckdb:///"):
            raise ValueError(
                f"DuckDB URL must look like duckdb:///path/to/file.duckdb, got {redact_url(url)!r}"
            )
        path = url[len("duckdb:///") :]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = open_duckdb(path)
        self.con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ values come back as UTC datetimes

    # ------------------------------------------------------------------ primitives

    def _execute(self, sql: str, params: tuple | list | None = None) -> None:
        self.con.execute(sql, params)

    def _fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        return self.con.execute(sql, params).fetchall()

    def _begin(self) -> None:
        self.con.begin()

    def _commit(self) -> None:
        self.con.commit()

    def _rollback(self) -> None:
        self.con.rollback()

    def _with_view(self, frame: pl.DataFrame, sql: str, params: tuple | list | None = None) -> list[tuple]:
        """Run `sql` with `{view}` naming the frame, registered through Arrow (no copy, no row loop)."""
        name = f"__sightline_frame_{next(_view_ids)}"
        self.con.register(name, frame.to_arrow())
        try:
            return self.con.execute(sql.replace("{view}", name), params).fetchall()
        finally:
            self.con.unregister(name)

    def _insert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        cols = ", ".join(table.column_names)
        self._with_view(
            frame.select(table.column_names),
            f"INSERT INTO {table.qualified} ({cols}) SELECT {cols} FROM {{view}}",
        )

    def _upsert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        cols = ", ".join(table.column_names)
        self._with_view(
            frame.select(table.column_names),
            f"INSERT OR REPLACE INTO {table.qualified} ({cols}) SELECT {cols} FROM {{view}}",
        )

    def _insert_detections(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.height == 0:
            return frame
        # Rows whose key is already stored; the ts bounds let DuckDB skip row groups outside the batch.
        indexed = frame.with_row_index("__row")
        lo, hi = frame["ts"].min(), frame["ts"].max()
        hits = self._with_view(
            indexed.select("__row", "camera_id", "ts", "track_id"),
            "SELECT b.__row FROM {view} b JOIN raw.detections d "
            "ON d.camera_id = b.camera_id AND d.ts = b.ts AND d.track_id = b.track_id "
            "WHERE d.ts BETWEEN ? AND ?",
            (lo, hi),
        )
        if hits:
            landed = pl.Series("__row", [r[0] for r in hits], dtype=pl.UInt32)
            already = indexed.filter(pl.col("__row").is_in(landed.implode())).drop("__row")
            frame = indexed.filter(~pl.col("__row").is_in(landed.implode())).drop("__row")
        else:
            already = frame.clear()
        self._insert_frame(ddl.DETECTIONS, frame)
        return already

    def _create_tables(self) -> None:
        with self._transaction():
            for schema in ddl.SCHEMAS:
                self._execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table in ddl.RAW_TABLES + ddl.REF_TABLES + ddl.OPS_TABLES:
                self._execute(table.create_sql("duckdb", unique_key=table is not ddl.DETECTIONS))
                for statement in table.comment_sql():
                    self._execute(statement)
            for statement in ddl.migration_sql():
                self._execute(statement)
            for statement in ddl.active_alerts_view_sql("duckdb"):
                self._execute(statement)

    def query(self, sql: str, params: tuple | list | None = None) -> pl.DataFrame:
        return self.con.execute(self._sql(sql), params).pl()

    def close(self) -> None:
        with _open_close:
            self.con.close()
