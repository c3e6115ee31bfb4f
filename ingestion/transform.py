"""Run the SQLMesh project in `transforms/` against the warehouse: the Python API behind
`sightline transform` and the Dagster assets.

    result = build_marts("duckdb:///data/warehouse.duckdb", date(2025, 1, 15), date(2025, 1, 16))

Days are site-local and `end` is exclusive. SQLMesh keeps hourly intervals in UTC; a site-local day is
the 24 (23/25 across DST) hourly intervals between two local midnights, always planned and restated as
a whole (see transforms/README.md). Thresholds, the timezone and the working schedule reach the models
as SQLMesh variables built from the site config, so no model holds a literal threshold.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestion.redact import redact_url
from ingestion.rollups import refresh_rollups
from ingestion.schema import HEALTH_WINDOW_SECONDS
from ingestion.site import Schedule, Site, load_site
from ingestion.warehouse import resolve_url

if TYPE_CHECKING:  # sqlmesh is heavy: imported inside the functions that need it
    from sqlmesh import Context
    from sqlmesh.core.config import Config

TRANSFORMS_DIR = Path(__file__).resolve().parent.parent / "transforms"
# The marts and their time columns come from the SQLMesh project itself (one owner: a new model is never
# left out of a restate, a row count or the audit report). `mart_models(ctx)` / `time_columns(ctx)` on an
# open context; the module attributes MART_MODELS and TIME_COLUMNS load the project once, lazily.


def project_models(ctx: Context) -> list[Any]:
    """Every model of the project that SQLMesh builds (not the external raw/ref tables), in dependency
    order (the staging view first). The one list the builds, the audit report and Dagster's assets use."""
    models = (ctx.models.get(fqn) for fqn in ctx.dag.sorted)
    return [m for m in models if m is not None and not m.kind.is_external]


def mart_models(ctx: Context) -> tuple[str, ...]:
    """`project_models` as schema.table: the names BI reads in schema `analytics`."""
    return tuple(_schema_table(m.fqn) for m in project_models(ctx))


def time_columns(ctx: Context) -> dict[str, str]:
    """Incremental models and the UTC time column each is partitioned on (restated by range, counted)."""
    return {
        _schema_table(m.fqn): m.time_column.column.name
        for m in project_models(ctx)
        if m.kind.is_incremental_by_time_range
    }


def _schema_table(fqn: str) -> str:
    return ".".join(p.strip('"') for p in fqn.split(".")[-2:])


@functools.cache
def _project_shape() -> tuple[tuple[str, ...], dict[str, str]]:
    ctx = sqlmesh_context(None, load_site())
    try:
        return mart_models(ctx), time_columns(ctx)
    finally:
        ctx.close()


def __getattr__(name: str):
    """MART_MODELS and TIME_COLUMNS, read from the SQLMesh project on first use (loading it takes seconds,
    so importing this module stays cheap)."""
    if name == "MART_MODELS":
        return _project_shape()[0]
    if name == "TIME_COLUMNS":
        return dict(_project_shape()[1])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Project defaults that are not site thresholds (overridable with SIGHTLINE_TRANSFORM_<NAME> variables).
DEFAULT_SETTINGS = {
    "session_lookahead_hours": 12,  # how far past a day's end a visit that started in the day is followed
    "heatmap_cell_px": 40,  # heatmap grid cell size in pixels
    "camera_down_seconds": 60,  # a camera delivering no frames this long in working time is an anomaly
    "index_start_grace_seconds": 300,  # an index block whose first activity is later than this is delayed
    "index_overrun_grace_seconds": 120,  # an index block whose work ends later than this past its end overran
    "health_window_seconds": HEALTH_WINDOW_SECONDS,  # raw.camera_health window length
}

# SQLMesh's linter runs on every plan (so `sightline transform` and build_marts stop on a lint error) with
# these built-in rules as errors: columns that do not exist or are ambiguous, SELECT * (expandable or not) in
# a model's outer query, unnamed or duplicate output columns, unregistered external tables, and models
# without audits. Not `nomissingunittest`: the marts are tested against the simulator's ground truth on both
# engines (tests/test_transforms*.py), the SQLMesh unit tests cover the rule edge cases.
LINT_RULES = frozenset(
    {
        "ambiguousorinvalidcolumn",
        "invalidselectstarexpansion",
        "noselectstar",
        "noambiguousprojections",
        "nomissingexternalmodels",
        "nomissingaudits",
    }
)

# Every incremental model declares `lookback 24` (hours): a run also recomputes the day before the first
# day it builds.
LOOKBACK_HOURS = 24

log = logging.getLogger(__name__)
# sqlglot warns on every EXTRACT(EPOCH FROM timestamptz) it transpiles; the models use it only in UTC.
logging.getLogger("sqlglot").setLevel(logging.ERROR)
# SQLMesh logs every statement at INFO; its console already shows progress. Keep its warnings and errors.
if logging.getLogger("sqlmesh").level == logging.NOTSET:
    logging.getLogger("sqlmesh").setLevel(logging.WARNING)


class _PlannedSkipFilter(logging.Filter):
    """build_marts applies model changes with skip_backfill and then fills exactly the requested days;
    SQLMesh's generic warning about skipping the backfill does not apply to that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Skipping the backfill stage")


logging.getLogger("sqlmesh.core.console").addFilter(_PlannedSkipFilter())


class TransformError(RuntimeError):
    """A model or a blocking audit failed."""


@dataclass(frozen=True)
class AuditOutcome:
    model: str
    audit: str
    passed: bool
    failures: int  # rows the audit query returned
    blocking: bool = True


@dataclass
class TransformResult:
    backend: str  # duckdb | postgres
    start: date  # first site-local day built
    end: date  # exclusive
    restated: bool
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)  # model -> rows in [start, end) after the build
    audits: list[AuditOutcome] = field(default_factory=list)
    rollup_seconds: float = 0.0  # recomputing the weeks and months holding the built days

    @property
    def audits_passed(self) -> bool:
        return all(a.passed for a in self.audits)


# ------------------------------------------------------------------------------------------- config


def duckdb_path(url: str) -> str:
    """The file of a duckdb:///path URL; relative paths are relative to the working directory."""
    path = url.removeprefix("duckdb://")
    path = path[1:] if path.startswith("/") and not path.startswith("//") else path[1:]
    return str(Path(path).expanduser().resolve())


def postgres_params(url: str | None) -> dict[str, Any]:
    """Connection fields for SQLMesh from a postgresql:// URL, completed by the PG* variables."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url) if url else {}
    params = {
        "host": parts.get("host") or os.environ.get("PGHOST", "127.0.0.1"),
        "port": int(parts.get("port") or os.environ.get("PGPORT", 5432)),
        "user": parts.get("user") or os.environ.get("PGUSER", "postgres"),
        "password": parts.get("password") or os.environ.get("PGPASSWORD", ""),
        "database": parts.get("dbname") or os.environ.get("PGDATABASE", "sightline"),
    }
    if parts.get("sslmode") or os.environ.get("PGSSLMODE"):
        params["sslmode"] = parts.get("sslmode") or os.environ["PGSSLMODE"]
    return params


def backend_of(url: str) -> str:
    if url.startswith("duckdb://"):
        return "duckdb"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise ValueError(
        f"unsupported warehouse URL {redact_url(url)!r}: use duckdb:///path.duckdb or "
        "postgresql://user@host/db "
        "(set SIGHTLINE_WAREHOUSE_URL or pass --warehouse)"
    )


def _working_minutes(sched: Schedule) -> list[list[int]]:
    """Working intervals as local wall-clock minutes since midnight (work_start..work_end minus breaks)."""
    minutes = []
    cursor = sched.work_start.hour * 60 + sched.work_start.minute
    for brk in sched.breaks:
        b_start = brk.start.hour * 60 + brk.start.minute
        minutes.append([cursor, b_start])
        cursor = b_start + brk.minutes
    minutes.append([cursor, sched.work_end.hour * 60 + sched.work_end.minute])
    return [m for m in minutes if m[1] > m[0]]


def sqlmesh_variables(site: Site) -> dict[str, Any]:
    """The SQLMesh variables every model reads: site thresholds, timezone, schedule and project settings."""
    from ingestion.alerts.store import config_of

    th = site.thresholds
    sched = site.schedule
    settings = {
        name: float(os.environ.get(f"SIGHTLINE_TRANSFORM_{name.upper()}", default))
        for name, default in DEFAULT_SETTINGS.items()
    }
    return {
        "timezone": site.timezone,
        "idle_motion_score": th.idle_motion_score,
        "session_gap_seconds": th.session_gap_seconds,
        "min_session_seconds": th.min_session_seconds,
        "session_dropout_seconds": th.session_dropout_seconds,
        "excessive_idle_seconds": th.excessive_idle_seconds,
        "overflow_seconds": th.overflow_seconds,
        "empty_seconds": th.empty_seconds,
        "link_max_gap_seconds": th.link_max_gap_seconds,
        "link_max_distance": th.link_max_distance,
        "link_max_size_ratio": th.link_max_size_ratio,
        "workdays": list(sched.workdays),
        "working_minutes": _working_minutes(sched),
        # Dated schedules (the macro working_intervals applies them as Site.schedule_on does).
        "schedule_changes": [
            {
                "effective": c.effective.isoformat(),
                "workdays": list(c.schedule.workdays),
                "working_minutes": _working_minutes(c.schedule),
            }
            for c in site.schedule_changes
        ],
        "schedule_overrides": [
            {
                "start": o.start.isoformat(),
                "end": o.end.isoformat(),
                "working_minutes": _working_minutes(o.schedule) if o.schedule else [],
            }
            for o in site.schedule_overrides
        ],
        # analytics.anomalies: each type's severity comes from the site's alert rules (ingestion.alerts).
        **{f"severity_{kind}": severity for kind, severity in config_of(site).anomaly_severities().items()},
        **settings,
    }


def sqlmesh_config(warehouse_url: str | None = None, site: Site | None = None) -> Config:
    """The SQLMesh Config: gateways `duckdb` and `postgres`, the default one chosen by the warehouse URL.

    State lives with the data: in the DuckDB file itself, or in schema `sqlmesh` of the PostgreSQL
    database. Credentials come only from the URL/environment.
    """
    from sqlmesh.core.config import Config, GatewayConfig, LinterConfig, ModelDefaultsConfig

    from ingestion.sqlmesh_duckdb import SightlineDuckDBConnectionConfig
    from ingestion.sqlmesh_postgres import SightlinePostgresConnectionConfig, concurrent_tasks

    url = resolve_url(warehouse_url)
    backend = backend_of(url)
    site = site or load_site()
    duck_url = url if backend == "duckdb" else "duckdb:///data/warehouse.duckdb"
    gateways = {
        "duckdb": GatewayConfig(
            connection=SightlineDuckDBConnectionConfig(
                database=duckdb_path(duck_url), connector_config={"TimeZone": "UTC"}
            )
        ),
        "postgres": GatewayConfig(
            connection=SightlinePostgresConnectionConfig(
                **postgres_params(url if backend == "postgres" else None),
                concurrent_tasks=concurrent_tasks(),
                # No `SELECT 1` before every statement (about 300 round trips per day built): a context lives
                # for one build, and a dropped connection fails the build either way.
                pre_ping=False,
            )
        ),
    }
    local_midnight = datetime.combine(date(2024, 1, 1), datetime.min.time(), tzinfo=site.tz).astimezone(UTC)
    return Config(
        gateways=gateways,
        default_gateway=backend,
        model_defaults=ModelDefaultsConfig(
            dialect="duckdb",
            # Hourly UTC intervals; the daily cron in the site timezone makes `sqlmesh run` process whole
            # site-local days (the cron ticks at local midnight), and the start is a local midnight.
            interval_unit="hour",
            cron="@daily",
            cron_tz=site.timezone,
            start=local_midnight.strftime("%Y-%m-%d %H:%M:%S"),
            # PostgreSQL plans the next model from table statistics: refresh them as soon as a model is built.
            post_statements=(
                ["@IF(@runtime_stage = 'evaluating', ANALYZE @this_model)"] if backend == "postgres" else None
            ),
        ),
        variables=sqlmesh_variables(site),
        linter=LinterConfig(enabled=True, rules=set(LINT_RULES)),
        disable_anonymized_analytics=True,
        # Default transforms/.cache; tests point it at a temporary folder so they never write the checkout.
        cache_dir=os.environ.get("SIGHTLINE_SQLMESH_CACHE_DIR") or None,
    )


def sqlmesh_context(warehouse_url: str | None = None, site: Site | None = None) -> Context:
    """A SQLMesh Context over transforms/ for this warehouse and site."""
    from sqlmesh import Context

    config = sqlmesh_config(warehouse_url, site)
    return Context(paths=str(TRANSFORMS_DIR), config=config, gateway=config.default_gateway)


def utc_range(site: Site, start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end) site-local days as a UTC range: local midnight to local midnight."""
    if end <= start:
        raise ValueError(
            f"end {end} must be after start {start} "
            "(end is exclusive: --start 2025-01-15 --end 2025-01-16 builds the 15th)"
        )
    return site.day_window(start)[0], site.day_window(end - timedelta(days=1))[1]


# ------------------------------------------------------------------------------------------- build


def build_marts(
    warehouse_url: str | None,
    start: date,
    end: date,
    restate: bool = False,
    site: Site | None = None,
    report_audits: bool = True,
) -> TransformResult:
    """Build every mart for site-local days [start, end) and run the audits.

    Missing intervals in the range are built; `restate=True` rebuilds the range even where it was built
    (exactly those days: rows of other days are untouched). Intervals inside the models' lookback
    (one day) are reprocessed too, which is how late data is picked up by the next day's run.
    Raises TransformError (or SQLMesh's error) when a model or a blocking audit fails; with
    `report_audits`, `result.audits` lists every audit outcome over the range (they are re-run to report).
    """
    from ingestion.warehouse import connect

    url = resolve_url(warehouse_url)
    site = site or load_site()
    utc_start, utc_end = utc_range(site, start, end)
    began = time.perf_counter()
    with connect(url, site) as wh:  # clear error when `sightline db setup` never ran (DuckDB: runs it)
        wh.require_setup()
        if restate:  # rebuilding days is the one way their index timeline changes (schedule in force then)
            wh.rebuild_index_timeline(start, end - timedelta(days=1))
    ctx = sqlmesh_context(url, site)
    try:
        if ctx.engine_adapter.dialect == "postgres":
            _analyze_sources(ctx)
        # Apply model changes (new versions of models) without computing anything yet...
        first_build = ctx.state_reader.get_environment("prod") is None
        plan = ctx.plan("prod", skip_backfill=True, skip_tests=True, auto_apply=True, no_prompts=True)
        changed = sorted(
            s.model.name
            for s in plan.new_snapshots
            if s.is_model and s.model.kind.is_incremental_by_time_range
        )
        if changed and not first_build:  # on a brand-new warehouse there are no other days to lose
            # A new model version starts with empty tables; only the requested days are built below.
            log.warning(
                "new versions of %d models (%s): days outside %s..%s are empty in them until "
                "rebuilt (sightline transform --start <first day> --end <after last day>)",
                len(changed),
                ", ".join(changed),
                start,
                end,
            )
        if restate:
            # ...then rebuild exactly [start, end): intervals are cleared and recomputed for every model.
            ctx.plan(
                "prod",
                start=_ts(utc_start),
                end=_ts(utc_end),
                restate_models=list(time_columns(ctx)),
                skip_tests=True,
                auto_apply=True,
                no_prompts=True,
            )
        else:
            # ...or fill what is missing. Starting the range one lookback earlier lets SQLMesh's lookback
            # recompute the day before the first missing one, which is how late data gets picked up.
            previous = utc_start - timedelta(hours=LOOKBACK_HOURS)
            run_start = previous if _was_built(ctx, previous, utc_start) else utc_start
            status = ctx.run("prod", start=_ts(run_start), end=_ts(utc_end), ignore_cron=True)
            if status.is_failure:
                raise TransformError(f"the SQLMesh run of {start}..{end} failed; see the errors above")
        # Weeks and months holding the built days (and the lookback day) are recomputed from their days.
        adapter = ctx.engine_adapter
        with adapter.transaction():
            rollup = refresh_rollups(
                adapter.execute,
                backend_of(url),
                [start + timedelta(days=i) for i in range(-1, (end - start).days)],
            )
        audits = _run_audits(ctx, utc_start, utc_end) if report_audits else []
        rows = _count_rows(ctx, utc_start, utc_end)
    finally:
        ctx.close()
    return TransformResult(
        backend_of(url), start, end, restate, time.perf_counter() - began, rows, audits, rollup.seconds
    )


def _was_built(ctx: Context, start: datetime, end: datetime) -> bool:
    """Whether the sessions model has any interval inside [start, end) (then it is worth recomputing)."""
    snapshot = ctx.get_snapshot("analytics.sessions", raise_if_missing=True)
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return any(a < hi and b > lo for a, b in snapshot.intervals)


def _analyze_sources(ctx: Context) -> None:
    """Fresh statistics on the landed tables, or PostgreSQL plans the sessionization as if they were empty.
    Through setup's SECURITY DEFINER function: ANALYZE needs the tables' owner, and marts are built by the
    writer role."""
    from ingestion.warehouse.ddl import ANALYZE_FUNCTION

    ctx.engine_adapter.execute(f"SELECT {ANALYZE_FUNCTION}")


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _count_rows(ctx: Context, utc_start: datetime, utc_end: datetime) -> dict[str, int]:
    adapter = ctx.engine_adapter
    rows = {}
    for model, column in time_columns(ctx).items():
        sql = (
            f"SELECT COUNT(*) FROM {model} "
            f"WHERE {column} >= CAST('{utc_start.isoformat()}' AS TIMESTAMPTZ) "
            f"AND {column} < CAST('{utc_end.isoformat()}' AS TIMESTAMPTZ)"
        )
        rows[model] = int(adapter.fetchone(sql)[0])
    return rows


def _run_audits(ctx: Context, utc_start: datetime, utc_end: datetime) -> list[AuditOutcome]:
    """Every audit of every mart over the range, as plain outcomes. The build already ran them (a failing
    blocking audit stops it); this pass reports them all, non-blocking ones included."""
    outcomes = []
    # Read once: each `ctx.snapshots` (and `get_snapshot`) rebuilds every snapshot from the state, about 0.1 s
    # a time, twice per model otherwise. Auditing reads tables only, so the state does not change meanwhile.
    snapshots = ctx.snapshots
    for model in project_models(ctx):
        name, snapshot = _schema_table(model.fqn), snapshots[model.fqn]
        for result in ctx.snapshot_evaluator.audit(
            snapshot=snapshot, start=_ts(utc_start), end=_ts(utc_end), snapshots=snapshots
        ):
            if result.skipped:
                continue
            outcomes.append(
                AuditOutcome(
                    name, result.audit.name, not result.count, int(result.count or 0), result.blocking
                )
            )
    return outcomes
