"""Run every quality check of a day (or of one table's partition) and return plain CheckResults.

    from quality import run_checks
    results = run_checks("duckdb:///data/warehouse.duckdb", date(2025, 1, 15), site)

The catalog (`CHECKS`) lists every check with the table it guards, so the Dagster asset checks and the CLI
enumerate the same things. Raw checks run per camera-day; mart checks per day.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ingestion.site import Site, load_site
from ingestion.warehouse import connect
from ingestion.warehouse.base import Warehouse
from quality.partition import Partition
from quality.reconcile import RECONCILIATIONS, Reconciliation
from quality.results import CheckResult
from quality.suites import SUITES, Suite

if TYPE_CHECKING:
    from quality.gx_validate import Validator


DOCS_DIR_ENV = "SIGHTLINE_GX_DOCS_DIR"
# Relative to the working directory, like the embedded warehouse file; data/ is git-ignored.
DEFAULT_DOCS_DIR = "data/gx_docs"


@dataclass(frozen=True)
class CheckDef:
    """What Dagster and the CLI need to know about a check before running it."""

    name: str
    table: str
    severity: str
    description: str
    per_camera: bool


CHECKS: list[CheckDef] = [
    CheckDef(c.name, c.table, c.severity, c.description, c.per_camera) for c in [*SUITES, *RECONCILIATIONS]
]
TABLES: list[str] = list(dict.fromkeys(c.table for c in CHECKS))


def docs_dir(path: str | Path | None = None) -> Path:
    """Where Data Docs are built: the argument, else $SIGHTLINE_GX_DOCS_DIR, else data/gx_docs."""
    return Path(path or os.environ.get(DOCS_DIR_ENV) or DEFAULT_DOCS_DIR).resolve()


def checks_for(table: str) -> list[CheckDef]:
    return [c for c in CHECKS if c.table == table]


def run_table_checks(
    wh: Warehouse,
    partition: Partition,
    table: str,
    *,
    validator: Validator | None = None,
    docs: Path | None = None,
) -> list[CheckResult]:
    """Every suite and reconciliation guarding `table` on one partition (a camera-day for raw tables).

    Pass one `validator` for many calls (the Data Docs index then lists them all); else one is made here
    that builds Data Docs into `docs` when given. With docs, every result gets its own offline page
    (quality/docs_site.py) and `docs_url` links it.
    """
    from quality.datasets import DATASETS

    suites: list[Suite] = [s for s in SUITES if s.table == table]
    recons: list[Reconciliation] = [r for r in RECONCILIATIONS if r.table == table]
    results: list[CheckResult] = []
    frames: dict[str, pl.DataFrame] = {}
    unreadable: dict[str, str] = {}
    for name in dict.fromkeys(s.dataset for s in suites):
        try:
            frames[name] = DATASETS[name](wh, partition)
        except Exception as exc:  # a missing table or column fails its checks with the reason, never silently
            unreadable[name] = f"could not read {table} for {partition.key}: {exc}".splitlines()[0]
    readable = [s for s in suites if s.dataset in frames]
    if readable:
        results += (validator or new_validator(docs)).validate(partition, frames, readable)
    results += [_error_result(s, partition, unreadable[s.dataset]) for s in suites if s.dataset in unreadable]
    for recon in recons:
        try:
            results.append(recon.run(wh, partition))
        except Exception as exc:
            results.append(
                _error_result(recon, partition, f"could not reconcile {table}: {exc}".splitlines()[0])
            )
    order = {c.name: i for i, c in enumerate(CHECKS)}
    results = sorted(results, key=lambda r: order[r.name])
    pages = validator.docs_dir if validator is not None else docs
    if pages is not None:
        from quality.docs_site import publish

        results = publish(pages, results)
    return results


def _error_result(check: Suite | Reconciliation, partition: Partition, reason: str) -> CheckResult:
    return CheckResult(
        name=check.name,
        table=check.table,
        partition=partition.key,
        passed=False,
        severity=check.severity,
        description=check.description,
        failed_expectations=[reason],
    )


def cameras_of_day(wh: Warehouse, site: Site, day: date) -> list[str]:
    """The cameras that landed anything for the day (detections, health or a ledger batch)."""
    start, end = site.day_window(day)
    found = wh.query(
        "SELECT DISTINCT camera_id FROM raw.detections WHERE ts >= {p} AND ts < {p} "
        "UNION SELECT DISTINCT camera_id FROM raw.camera_health "
        "WHERE window_start >= {p} AND window_start < {p} "
        "UNION SELECT DISTINCT camera_id FROM raw.ingest_batches "
        "WHERE camera_id IS NOT NULL AND window_start < {p} AND window_end > {p}",
        [start, end, start, end, end, start],
    )
    present = set(found["camera_id"].to_list())
    return [c for c in site.camera_ids if c in present]


def run_checks(
    warehouse_url: str | None,
    day: date,
    site: Site | None = None,
    *,
    cameras: list[str] | None = None,
    docs: str | Path | None = None,
    build_docs: bool = True,
) -> list[CheckResult]:
    """All checks of one site-local day: raw checks per camera that landed data, then every mart's checks.

    Data Docs are built into `docs_dir(docs)` unless `build_docs` is False; each result's `docs_url` links
    its own page (which links GX's validation page), and `docs_index(...)` lists every result.
    """
    site = site or load_site()
    validator = new_validator(docs_dir(docs) if build_docs else None)
    results: list[CheckResult] = []
    with connect(warehouse_url, site) as wh:
        for camera_id in cameras if cameras is not None else cameras_of_day(wh, site, day):
            partition = Partition(site, day, camera_id)
            for table in TABLES:
                if any(c.per_camera for c in checks_for(table)):
                    results += run_table_checks(wh, partition, table, validator=validator)
        day_partition = Partition(site, day)
        for table in TABLES:
            if not any(c.per_camera for c in checks_for(table)):
                results += run_table_checks(wh, day_partition, table, validator=validator)
    return results


def new_validator(docs: Path | None) -> Validator:
    """A Great Expectations context for one run of checks (this is where GX gets imported)."""
    from quality.gx_validate import Validator

    return Validator(docs)


def docs_index(docs: str | Path | None = None) -> Path:
    """The check results page (quality/docs_site.py: plain HTML that works offline, unlike GX's index)."""
    from quality.docs_site import RESULTS_PAGE

    return docs_dir(docs) / RESULTS_PAGE
