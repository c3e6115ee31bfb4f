"""The landing interface every warehouse backend implements (DuckDB embedded, PostgreSQL/TimescaleDB).

Contract (DESIGN.md, "Warehouse contract"):
- `setup(site)` creates the `raw`, `ref`, `analytics` schemas and the raw tables, and (re)loads the
  `ref` tables from the site config. Idempotent.
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

import polars as pl

from ingestion.site import Site


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
        """Create schemas and raw tables if missing and reload ref.cameras/zones/index_timeline."""

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
    ) -> LandingResult:
        """Land one batch exactly once. `window` [start, end) bounds the rows' ts (outside: rejected).

        With `allowed_lateness`, rows older than the camera's watermark minus it still land, and their
        (camera_id, local day) is recorded in raw.days_to_rebuild."""

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
        """Atomically replace one camera's site-local day with these rows (idempotent)."""

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
