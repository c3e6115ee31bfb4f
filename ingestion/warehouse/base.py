"""The landing interface every warehouse backend implements (DuckDB embedded, PostgreSQL/TimescaleDB).

Contract (DESIGN.md, "Warehouse contract"):
- `setup()` is the owner's DDL (`sightline db setup`): schemas, tables, comments, functions, then the
  `ref` tables from the site config. Idempotent. Nothing else runs DDL: landing, streaming and Dagster
  runs call `require_setup()`, which fails with WarehouseNotSetUp when setup has not run (the embedded
  DuckDB file, which has no roles, sets itself up instead), and `load_reference()` (rows only).
- `append_batch` is exactly-once through `raw.ingest_batches`: the batch's rows and its ledger row commit
  in one transaction; a batch id already committed is a no-op that reports `skipped=True`.
- `replace_partition` atomically replaces one camera's site-local day (detections and camera health).
- Rows are validated (vectorised) before landing; bad rows go to `raw.rejected_detections` with a reason,
  good rows land, and the caller gets both counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import polars as pl

from ingestion.site import Site

SIMULATOR_SOURCE = "simulator"  # the `source` of simulated batches: they never replace any other source's


class WarehouseNotSetUp(RuntimeError):
    """The warehouse lacks tables or functions that `sightline db setup` creates (or this role may not see
    them): landing does no DDL, so the owner must run setup first."""


class SimulatorWouldReplaceRealData(RuntimeError):
    """A simulated camera-day would replace rows that another source landed."""


# What append_batch does with rows whose key is already landed (see Warehouse.append_batch).
IfLanded = Literal["reject", "raise"]


class RowsAlreadyLanded(RuntimeError):
    """`append_batch(..., if_landed="raise")` met rows whose key (camera_id, ts, track_id) is already
    landed; the batch was rolled back whole, nothing was written. `rows`: those rows of the batch."""

    def __init__(self, batch_id: str, rows: pl.DataFrame):
        super().__init__(f"batch {batch_id}: {rows.height} rows have a key that is already landed")
        self.rows = rows


@dataclass(frozen=True)
class LandingResult:
    batch_id: str
    landed: int  # detection rows committed
    rejected: int  # rows sent to raw.rejected_detections
    skipped: bool = False  # the batch id was already committed: nothing was written
    health_rows: int = 0


class Warehouse(ABC):
    """One warehouse connection. Use as a context manager or call close()."""

    backend: str  # "duckdb" | "postgres"
    url: str
    site: Site

    @abstractmethod
    def setup(self) -> None:
        """The owner's DDL: create schemas, tables and functions if missing; then load_reference()."""

    @abstractmethod
    def require_setup(self) -> None:
        """Raise WarehouseNotSetUp unless setup() has run (DuckDB: run it). Runs no DDL on PostgreSQL."""

    @abstractmethod
    def load_reference(self) -> None:
        """Reload ref.cameras, ref.zones, ref.site (and existing days' ref.index_timeline) from the site."""

    @abstractmethod
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
        """Land one batch exactly once. `window` [start, end) bounds the rows' ts (outside: rejected).

        With `allowed_lateness`, rows older than the camera's watermark minus it still land, and their
        (camera_id, local day) is recorded in raw.days_to_rebuild. Rows whose key is already landed go to
        raw.rejected_detections (`if_landed="reject"`), or make the whole batch roll back with
        RowsAlreadyLanded (`"raise"`: a caller that judges such rows itself, like the stream, lands
        optimistically and looks only when the landing layer's own duplicate check finds some)."""

    @abstractmethod
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
        """Atomically replace one camera's site-local day with these rows (idempotent).

        With source=SIMULATOR_SOURCE, raises SimulatorWouldReplaceRealData when the camera-day holds rows
        of any other source, and deletes nothing."""

    @abstractmethod
    def reject(self, source: str, camera_id: str | None, payloads: list[str], reasons: list[str]) -> int:
        """Write dead letters that never became rows (e.g. unparseable messages). Returns the count."""

    @abstractmethod
    def query(self, sql: str, params: tuple | list | None = None) -> pl.DataFrame:
        """Run a query and return its result as a polars frame. Write parameters as `{p}`: each
        backend turns them into its driver's marker, so one SQL text serves DuckDB and PostgreSQL."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
