"""The landing flow shared by the DuckDB and PostgreSQL backends.

One batch = one transaction: claim the batch id in the ledger (a replay finds it and writes nothing),
land the valid rows through the backend's bulk path, send bad rows to the dead-letter table, advance
the camera watermarks, mark late camera-days for rebuild, make sure `ref.index_timeline` covers the
landed days, and write the ledger counts. Any failure rolls all of it back.

Backends supply the SQL primitives (`_execute`, `_fetch`, `_begin`/`_commit`/`_rollback`,
`_insert_frame`, `_upsert_frame`, `_insert_detections`, `_prepare_days`, `_create_tables`) and their
placeholder style, and `auto_setup` (True where a missing setup may simply be run: DuckDB).
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import get_args

import polars as pl

from ingestion.redact import redact_url
from ingestion.schema import UTC_TS
from ingestion.site import Site
from ingestion.warehouse import ddl
from ingestion.warehouse.base import (
    SIMULATOR_SOURCE,
    IfLanded,
    LandingResult,
    RowsAlreadyLanded,
    SimulatorWouldReplaceRealData,
    Warehouse,
    WarehouseNotSetUp,
)
from ingestion.warehouse.validate import Split, rejected_rows, validate_camera_health, validate_detections

log = logging.getLogger(__name__)


class SqlWarehouse(Warehouse):
    """Backend-independent landing logic; see the module docstring for what a backend provides."""

    placeholder: str  # "%s" (psycopg) or "?" (DuckDB)
    auto_setup: bool = False  # require_setup() runs setup() instead of failing (embedded DuckDB: no roles)

    def __init__(self, url: str, site: Site):
        self.url = url
        self.site = site
        self._tx_depth = 0

    # ------------------------------------------------------------------ backend primitives

    @abstractmethod
    def _execute(self, sql: str, params: tuple | list | None = None) -> None: ...

    @abstractmethod
    def _fetch(self, sql: str, params: tuple | list | None = None) -> list[tuple]: ...

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _insert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        """Bulk-insert a frame holding exactly table.columns, in order."""

    @abstractmethod
    def _upsert_frame(self, table: ddl.Table, frame: pl.DataFrame) -> None:
        """Bulk insert; rows whose primary key exists replace the stored row."""

    @abstractmethod
    def _insert_detections(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Land detections; return the rows NOT landed because their key is already in raw.detections."""

    @abstractmethod
    def _create_tables(self) -> None: ...

    def _prepare_days(self, days: list[date]) -> None:  # noqa: B027 - optional hook
        """Called outside the landing transaction before rows of these local days land (partitions)."""

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; nested uses join the outer one."""
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield
            finally:
                self._tx_depth -= 1
            return
        self._begin()
        self._tx_depth = 1
        try:
            yield
        except BaseException:
            self._tx_depth = 0
            self._rollback()
            raise
        self._tx_depth = 0
        self._commit()

    def _sql(self, sql: str) -> str:
        return sql.replace("{p}", self.placeholder)

    def _local_days(self, ts: pl.Series) -> list[date]:
        if ts.len() == 0:
            return []
        # Every UTC offset is a multiple of 15 minutes: converting the distinct quarter-hours is exact and
        # far cheaper than converting every row.
        quarters = ts.dt.truncate("15m").unique()
        return sorted(quarters.dt.convert_time_zone(self.site.timezone).dt.date().unique().to_list())

    # ------------------------------------------------------------------ setup and ref tables

    def setup(self) -> None:
        self._create_tables()
        self.load_reference()
        log.info("warehouse %s ready (%s)", redact_url(self.url), self.backend)

    def require_setup(self) -> None:
        missing = self._missing_setup()
        if not missing:
            return
        if self.auto_setup:
            self.setup()
            return
        raise WarehouseNotSetUp(
            f"warehouse {redact_url(self.url)} is not set up for this role: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing or not granted. Landing, streaming and Dagster "
            "runs create no tables. Fix: run `sightline db setup` as the owner (then `sightline db "
            "grant-writer` so the writer role may use them)"
        )

    def _missing_setup(self) -> list[str]:
        """What setup() creates that this connection cannot see (tables; backends add functions)."""
        visible = {
            f"{schema}.{name}"
            for schema, name in self._fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                f"WHERE table_schema IN ({', '.join(repr(s) for s in ddl.DATA_SCHEMAS)})"
            )
        }
        tables = ddl.RAW_TABLES + ddl.REF_TABLES + ddl.OPS_TABLES
        return [t.qualified for t in tables if t.qualified not in visible]

    def load_reference(self) -> None:
        with self._transaction():
            self._load_ref()

    def _load_ref(self) -> None:
        site = self.site
        cameras = pl.DataFrame(
            [(c.id, c.name, c.source, c.width, c.height, float(c.fps)) for c in site.cameras],
            schema=list(ddl.CAMERAS.column_names),
            orient="row",
        )
        zones = pl.DataFrame(
            [
                (
                    z.id,
                    z.camera,
                    z.name,
                    z.type,
                    json.dumps([list(p) for p in z.polygon]),
                    z.min_workers,
                    z.max_workers,
                    z.alert_on_empty,
                    z.alert_on_overflow,
                )
                for z in site.zones
            ],
            schema={
                "zone_id": pl.String,
                "camera_id": pl.String,
                "name": pl.String,
                "zone_type": pl.String,
                "polygon": pl.String,
                "min_workers": pl.Int32,
                "max_workers": pl.Int32,
                "alert_on_empty": pl.Boolean,
                "alert_on_overflow": pl.Boolean,
            },
            orient="row",
        )
        s, t = site.schedule, site.thresholds
        site_row = pl.DataFrame(
            [
                {
                    "name": site.name,
                    "timezone": site.timezone,
                    "work_start": f"{s.work_start:%H:%M}",
                    "work_end": f"{s.work_end:%H:%M}",
                    "indices": s.indices,
                    **{k: float(getattr(t, k)) for k in ddl.SITE.column_names[5:]},
                }
            ],
            schema_overrides={"indices": pl.Int32},
        )
        workers = pl.DataFrame(
            [(w.id, w.name, w.shift, json.dumps(list(w.zones)), w.skill) for w in site.workers],
            schema=list(ddl.WORKERS.column_names),
            orient="row",
        )
        for table, frame in (
            (ddl.CAMERAS, cameras),
            (ddl.ZONES, zones),
            (ddl.SITE, site_row),
            (ddl.WORKERS, workers),
        ):
            self._execute(f"DELETE FROM {table.qualified}")
            if frame.height:
                self._insert_frame(
                    table,
                    frame.cast({"width": pl.Int32, "height": pl.Int32}, strict=False)
                    if table is ddl.CAMERAS
                    else frame,
                )
        # ref.index_timeline is history: a stored day keeps its blocks whatever the site file says now
        # (rebuild_index_timeline rewrites a day on request, with the schedule in force that day).

    def ensure_index_timeline(self, start_day: date, end_day: date) -> int:
        """Add the ref.index_timeline blocks of each workday in [start_day, end_day]; returns the rows added.

        Landing calls this for the local days it lands, so a warehouse with data always has its timeline.
        """
        return self._ensure_timeline_days(
            [start_day + timedelta(days=i) for i in range((end_day - start_day).days + 1)]
        )

    def rebuild_index_timeline(self, start_day: date, end_day: date) -> int:
        """Rewrite the ref.index_timeline blocks of [start_day, end_day] with the site's schedule for each
        day (its dated changes and overrides); returns the rows written. The only way a stored day changes."""
        days = [start_day + timedelta(days=i) for i in range((end_day - start_day).days + 1)]
        with self._transaction():
            self._lock_timeline()
            delete = "DELETE FROM ref.index_timeline WHERE date BETWEEN {p} AND {p}"
            self._execute(self._sql(delete), (start_day, end_day))
            return self._insert_timeline(days)

    def _ensure_timeline_days(self, days: list[date]) -> int:
        if not days:
            return 0
        with self._transaction():
            self._lock_timeline()
            existing = {
                r[0]
                for r in self._fetch(
                    self._sql("SELECT DISTINCT date FROM ref.index_timeline WHERE date BETWEEN {p} AND {p}"),
                    (min(days), max(days)),
                )
            }
            return self._insert_timeline([d for d in days if d not in existing])

    def _lock_timeline(self) -> None:
        """Serialise check-then-insert of ref.index_timeline between concurrent landings (camera-day runs of
        one day on several workers). DuckDB has a single writer; PostgreSQL takes a transaction lock."""

    def _insert_timeline(self, days: list[date]) -> int:
        blocks = [b for d in days for b in self.site.index_timeline(d)]
        if not blocks:
            return 0
        frame = pl.DataFrame(
            {
                "date": [b.date for b in blocks],
                "index_number": [b.index_number for b in blocks],
                "scheduled_start": [b.scheduled_start for b in blocks],
                "scheduled_end": [b.scheduled_end for b in blocks],
                "working_seconds": [b.working_seconds for b in blocks],
            },
            schema={
                "date": pl.Date,
                "index_number": pl.Int32,
                "scheduled_start": UTC_TS,
                "scheduled_end": UTC_TS,
                "working_seconds": pl.Float64,
            },
        )
        self._insert_frame(ddl.INDEX_TIMELINE, frame)
        return frame.height

    # ------------------------------------------------------------------ landing

    def append_batch(
        self,
        batch_id: str,
        detections: pl.DataFrame,
        *,
        source: str,
        camera_id: str | None = None,
        window: tuple[datetime, datetime] | None = None,
        camera_health: pl.DataFrame | None = None,
        allowed_lateness: timedelta | None = None,
        if_landed: IfLanded = "reject",
    ) -> LandingResult:
        if if_landed not in get_args(IfLanded):
            raise ValueError(f"if_landed must be one of {get_args(IfLanded)}, got {if_landed!r}")
        skipped = LandingResult(batch_id, 0, 0, skipped=True)
        if self._fetch(self._sql("SELECT 1 FROM raw.ingest_batches WHERE batch_id = {p}"), (batch_id,)):
            log.info("batch %s already landed: skipped", batch_id)  # cheap early exit for replays
            return skipped
        checked, health = self._validate(batch_id, detections, camera_health, camera_id, window)
        self._prepare_days(self._local_days(checked.good["ts"]))
        with self._transaction():
            # Claiming the id first makes a concurrent writer of the same batch wait here, then skip.
            claimed = self._fetch(
                self._sql(
                    "INSERT INTO raw.ingest_batches (batch_id, source, camera_id, window_start, window_end, "
                    "row_count, rejected_count, health_rows, status, committed_at) "
                    "VALUES ({p}, {p}, {p}, {p}, {p}, 0, 0, 0, 'landing', current_timestamp) "
                    "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id"
                ),
                (batch_id, source, camera_id, *(window or (None, None))),
            )
            if not claimed:
                log.info("batch %s already landed: skipped", batch_id)
                return skipped
            args = (batch_id, source, camera_id, checked, health, allowed_lateness)
            return self._land(*args, dedupe=True, if_landed=if_landed)

    def replace_partition(
        self,
        camera_id: str,
        day: date,
        detections: pl.DataFrame,
        *,
        source: str,
        camera_health: pl.DataFrame | None = None,
        batch_id: str | None = None,
    ) -> LandingResult:
        batch_id = batch_id or f"{source}:{camera_id}:{day.isoformat()}"
        start, end = self.site.day_window(day)
        checked, health = self._validate(batch_id, detections, camera_health, camera_id, (start, end))
        self._prepare_days([day])
        simulated = source == SIMULATOR_SOURCE
        with self._transaction():
            if simulated:
                self._refuse_to_replace_other_sources(camera_id, day, start, end)
            # Other batches that landed rows in this camera-day keep their ledger row, marked 'replaced'
            # with the counts reduced to what is still stored: a late replay of such a batch is still
            # skipped, and every ledger row_count keeps matching its rows in raw.detections.
            window_params = (camera_id, start, end)
            # The simulator deletes only simulated rows, even those another source commits after the check
            # above (its insert then fails on the unique key and rolls everything back).
            own_rows = " AND batch_id IN (SELECT batch_id FROM raw.ingest_batches WHERE source = {p})"
            own_rows = own_rows if simulated else ""
            own_params = (SIMULATOR_SOURCE,) if simulated else ()
            for table, ts_col, count_col in (
                ("raw.detections", "ts", "row_count"),
                ("raw.camera_health", "window_start", "health_rows"),
            ):
                self._execute(
                    self._sql(
                        f"UPDATE raw.ingest_batches SET {count_col} = {count_col} - gone.n, "
                        "status = 'replaced' FROM (SELECT batch_id, count(*) AS n "
                        f"FROM {table} WHERE camera_id = {{p}} AND {ts_col} >= {{p}} AND {ts_col} < {{p}}"
                        f"{own_rows} GROUP BY batch_id) AS gone "
                        "WHERE raw.ingest_batches.batch_id = gone.batch_id "
                        "AND raw.ingest_batches.batch_id <> {p}"
                    ),
                    (*window_params, *own_params, batch_id),
                )
                self._execute(
                    self._sql(
                        f"DELETE FROM {table} WHERE camera_id = {{p}} "
                        f"AND {ts_col} >= {{p}} AND {ts_col} < {{p}}{own_rows}"
                    ),
                    (*window_params, *own_params),
                )
            # This partition's own earlier run: its ledger row and dead letters (a rerun gives the same rows).
            self._execute(self._sql("DELETE FROM raw.ingest_batches WHERE batch_id = {p}"), (batch_id,))
            self._execute(self._sql("DELETE FROM raw.rejected_detections WHERE batch_id = {p}"), (batch_id,))
            self._execute(
                self._sql(
                    "INSERT INTO raw.ingest_batches (batch_id, source, camera_id, window_start, window_end, "
                    "row_count, rejected_count, health_rows, status, committed_at) "
                    "VALUES ({p}, {p}, {p}, {p}, {p}, 0, 0, 0, 'landing', current_timestamp)"
                ),
                (batch_id, source, camera_id, start, end),
            )
            return self._land(batch_id, source, camera_id, checked, health, None, dedupe=False)

    def _refuse_to_replace_other_sources(
        self, camera_id: str, day: date, start: datetime, end: datetime
    ) -> None:
        """Raise SimulatorWouldReplaceRealData if rows of this camera-day came from a non-simulator batch."""
        others = self._fetch(
            self._sql(
                "SELECT coalesce(b.source, '(no ledger row)') AS source, count(DISTINCT r.batch_id), "
                "sum(r.n) FROM (SELECT batch_id, count(*) AS n FROM raw.detections "
                "WHERE camera_id = {p} AND ts >= {p} AND ts < {p} GROUP BY batch_id "
                "UNION ALL SELECT batch_id, count(*) AS n FROM raw.camera_health "
                "WHERE camera_id = {p} AND window_start >= {p} AND window_start < {p} GROUP BY batch_id) r "
                "LEFT JOIN raw.ingest_batches b ON b.batch_id = r.batch_id "
                "WHERE b.source IS DISTINCT FROM {p} GROUP BY 1 ORDER BY 1"
            ),
            (camera_id, start, end, camera_id, start, end, SIMULATOR_SOURCE),
        )
        if others:
            found = "; ".join(f"{src}: {batches} batches, {rows:,} rows" for src, batches, rows in others)
            raise SimulatorWouldReplaceRealData(
                f"refusing to simulate camera {camera_id} on {day}: that camera-day holds data landed by "
                f"other sources ({found}) and a simulator never replaces real data; nothing was changed. "
                "Fix: simulate another day or camera, or point the simulator at its own warehouse "
                "(--warehouse, or SIGHTLINE_SOURCE other than `simulated` in a deployment)"
            )

    def _validate(
        self,
        batch_id: str,
        detections: pl.DataFrame,
        camera_health: pl.DataFrame | None,
        camera_id: str | None,
        window: tuple[datetime, datetime] | None,
    ) -> tuple[Split, Split | None]:
        if window is not None and (window[0].tzinfo is None or window[1].tzinfo is None):
            raise ValueError("window must be timezone-aware datetimes (UTC), e.g. site.day_window(day)")
        detections = _with_batch_id(detections, batch_id)
        checked = validate_detections(detections, self.site, camera_id=camera_id, window=window)
        health = None
        if camera_health is not None:
            health = validate_camera_health(
                _with_batch_id(camera_health, batch_id), self.site, camera_id=camera_id, window=window
            )
        return checked, health

    def _land(
        self,
        batch_id: str,
        source: str,
        camera_id: str | None,
        checked: Split,
        health: Split | None,
        allowed_lateness: timedelta | None,
        *,
        dedupe: bool,
        if_landed: IfLanded = "reject",
    ) -> LandingResult:
        good = checked.good  # sorted by the unique key by validation
        watermarks = self._watermarks(good["camera_id"].unique().to_list())
        rejected = [checked.rejected]
        if dedupe:
            landed_before = self._insert_detections(good)
            if landed_before.height and if_landed == "raise":  # inside the transaction: all rolls back
                raise RowsAlreadyLanded(batch_id, landed_before)
            if landed_before.height:
                good = good.join(
                    landed_before.select("camera_id", "ts", "track_id"),
                    on=["camera_id", "ts", "track_id"],
                    how="anti",
                )
                rejected.append(
                    rejected_rows(landed_before, "duplicate key (camera_id, ts, track_id) already landed")
                )
        elif good.height:
            self._insert_frame(ddl.DETECTIONS, good)
        health_rows = 0
        if health is not None:
            rejected.append(health.rejected)
            if health.good.height:
                self._upsert_frame(ddl.CAMERA_HEALTH, health.good)
            health_rows = health.good.height
        dead = pl.concat(rejected)
        if dead.height:
            self._insert_frame(
                ddl.REJECTED_DETECTIONS,
                dead.select(
                    pl.lit(datetime.now(UTC), dtype=UTC_TS).alias("received_at"),
                    pl.lit(source).alias("source"),
                    "camera_id",
                    pl.lit(batch_id).alias("batch_id"),
                    "payload",
                    "reason",
                ),
            )
        self._advance_watermarks(good, watermarks, allowed_lateness, batch_id)
        self._ensure_timeline_days(self._local_days(good["ts"]))
        self._execute(
            self._sql(
                "UPDATE raw.ingest_batches SET row_count = {p}, rejected_count = {p}, health_rows = {p}, "
                "status = 'committed', committed_at = current_timestamp WHERE batch_id = {p}"
            ),
            (good.height, dead.height, health_rows, batch_id),
        )
        if dead.height:
            log.warning("batch %s: %d rows rejected to raw.rejected_detections", batch_id, dead.height)
        return LandingResult(batch_id, good.height, dead.height, skipped=False, health_rows=health_rows)

    # ------------------------------------------------------------------ watermarks and late data

    def _watermarks(self, cameras: list[str]) -> dict[str, datetime]:
        out = {}
        for cam in cameras:
            rows = self._fetch(
                self._sql("SELECT max_event_ts FROM raw.camera_watermarks WHERE camera_id = {p}"), (cam,)
            )
            if rows and rows[0][0] is not None:
                out[cam] = rows[0][0]
        return out

    def _advance_watermarks(
        self,
        good: pl.DataFrame,
        before: dict[str, datetime],
        allowed_lateness: timedelta | None,
        batch_id: str,
    ) -> None:
        if good.height == 0:
            return
        per_camera = good.group_by("camera_id").agg(pl.col("ts").max().alias("max_ts"))
        for cam, max_ts in per_camera.iter_rows():  # one row per camera, not per detection
            self._execute(
                self._sql(
                    "INSERT INTO raw.camera_watermarks (camera_id, max_event_ts, updated_at) "
                    "VALUES ({p}, {p}, current_timestamp) ON CONFLICT (camera_id) DO UPDATE SET "
                    "max_event_ts = GREATEST(raw.camera_watermarks.max_event_ts, excluded.max_event_ts), "
                    "updated_at = excluded.updated_at"
                ),
                (cam, max_ts),
            )
        if allowed_lateness is None or not before:
            return
        limits = pl.DataFrame(
            {"camera_id": list(before), "limit_ts": [wm - allowed_lateness for wm in before.values()]},
            schema={"camera_id": pl.String, "limit_ts": UTC_TS},
        )
        late = (
            good.join(limits, on="camera_id")
            .filter(pl.col("ts") < pl.col("limit_ts"))
            .with_columns(pl.col("ts").dt.convert_time_zone(self.site.timezone).dt.date().alias("day"))
            .group_by("camera_id", "day")
            .agg(pl.len().alias("rows"), pl.col("ts").min().alias("oldest"), pl.col("limit_ts").first())
        )
        for cam, day, rows, oldest, limit_ts in late.iter_rows():  # one row per late camera-day
            reason = (
                f"late data: {rows} rows of batch {batch_id} older than watermark - allowed lateness "
                f"({limit_ts.isoformat()}), oldest {oldest.isoformat()}"
            )
            self._execute(
                self._sql(
                    "INSERT INTO raw.days_to_rebuild (camera_id, day, reason, marked_at) "
                    "VALUES ({p}, {p}, {p}, current_timestamp) ON CONFLICT (camera_id, day) DO UPDATE SET "
                    "reason = excluded.reason, marked_at = excluded.marked_at"
                ),
                (cam, day, reason),
            )
            log.warning("camera %s day %s marked for rebuild: %s", cam, day, reason)

    # ------------------------------------------------------------------ dead letters and queries

    def reject(self, source: str, camera_id: str | None, payloads: list[str], reasons: list[str]) -> int:
        if len(payloads) != len(reasons):
            raise ValueError(
                f"reject: {len(payloads)} payloads but {len(reasons)} reasons; give one reason each"
            )
        if not payloads:
            return 0
        frame = pl.DataFrame(
            {"payload": payloads, "reason": reasons}, schema={"payload": pl.String, "reason": pl.String}
        )
        with self._transaction():
            self._insert_frame(
                ddl.REJECTED_DETECTIONS,
                frame.select(
                    pl.lit(datetime.now(UTC), dtype=UTC_TS).alias("received_at"),
                    pl.lit(source).alias("source"),
                    pl.lit(camera_id, dtype=pl.String).alias("camera_id"),
                    pl.lit(None, dtype=pl.String).alias("batch_id"),
                    "payload",
                    "reason",
                ),
            )
        return frame.height


def _with_batch_id(frame: pl.DataFrame, batch_id: str) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        return frame  # conform() raises the clear error
    return frame.with_columns(pl.lit(batch_id, dtype=pl.String).alias("batch_id"))
