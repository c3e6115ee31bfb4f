"""Our small Dagster <-> SQLMesh bridge, on SQLMesh's own Python API.

- The SQLMesh project's DAG becomes Dagster asset specs: one asset per model (`analytics/<table>`), with
  dependencies from the model's `depends_on`; the EXTERNAL `raw.*` / `ref.*` tables map onto the Dagster
  assets that land them. Keys, groups and check names come from the SightlineTranslator
  (orchestration/translator.py).
- Every audit attached to a model becomes an asset check on that model's asset (blocking when the
  SQLMesh audit is blocking), evaluated over exactly the window that was built.
- A day-partition window is built by `ingestion.transform` (the one way marts are built, shared with
  `sightline transform`); this module only reads the project's shape and runs its audits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import dagster as dg

from orchestration.translator import SightlineTranslator


@dataclass(frozen=True)
class AuditCheck:
    audit_name: str  # SQLMesh audit name
    args: str  # the audit's arguments as SQL, for the description
    blocking: bool
    arg_sql: tuple[tuple[str, str], ...] = ()  # (argument, SQL) pairs, `blocking` left out


@dataclass(frozen=True)
class MartModel:
    """What Dagster needs to know of one SQLMesh model; its asset key, group and check names come from the
    SightlineTranslator (orchestration/translator.py)."""

    fqn: str  # SQLMesh's quoted fully qualified name
    name: str  # schema.table
    upstream: tuple[str, ...]  # schema.table of direct dependencies
    kind: str
    description: str | None
    time_column: str | None
    time_column_is_date: bool
    columns: tuple[str, ...]
    column_descriptions: tuple[tuple[str, str], ...]
    audits: tuple[AuditCheck, ...]
    # (column, SQL type) from SQLMesh's columns_to_types: the column schema the Dagster UI shows.
    column_types: tuple[tuple[str, str], ...] = ()

    @property
    def table(self) -> str:
        return self.name


def _schema_table(fqn_or_name: str) -> str:
    parts = [p.strip('"') for p in fqn_or_name.split(".")]
    return ".".join(parts[-2:])


def _arg_sql(value) -> str:
    return value.sql() if hasattr(value, "sql") else str(value)


@lru_cache(maxsize=4)
def load_mart_models(site_path: str | None = None) -> tuple[MartModel, ...]:
    """The project's non-external models in dependency order (upstream first). Loading the SQLMesh context
    parses the models; it does not open the warehouse."""
    from ingestion.site import load_site
    from ingestion.transform import project_models, sqlmesh_context

    ctx = sqlmesh_context(None, load_site(site_path))
    try:
        return tuple(_mart_model(m) for m in project_models(ctx))
    finally:
        ctx.close()


def _mart_model(model) -> MartModel:
    audits = []
    for audit, args in model.audits_with_args:
        # A model-level `blocking := false` overrides the audit's own default (SQLMesh semantics).
        blocking = (
            _arg_sql(args["blocking"]).lower() not in ("false", "0") if "blocking" in args else audit.blocking
        )
        shown = tuple((k, _arg_sql(v)) for k, v in args.items() if k != "blocking")
        audits.append(AuditCheck(audit.name, ", ".join(f"{k} := {v}" for k, v in shown), blocking, shown))
    time_col = model.time_column.column.name if getattr(model, "time_column", None) else None
    col_types = model.columns_to_types or {}
    is_date = bool(time_col and str(col_types.get(time_col, "")).upper().startswith("DATE"))
    return MartModel(
        fqn=model.fqn,
        name=_schema_table(model.name),
        upstream=tuple(sorted(_schema_table(d) for d in model.depends_on)),
        kind=str(getattr(model.kind.name, "value", model.kind.name)),
        description=model.description,
        time_column=time_col,
        time_column_is_date=is_date,
        columns=tuple(col_types),
        column_descriptions=tuple((model.column_descriptions or {}).items()),
        audits=tuple(audits),
        column_types=tuple((c, t.sql(dialect=model.dialect)) for c, t in col_types.items()),
    )


def model_asset_specs(
    models: Sequence[MartModel],
    translator: SightlineTranslator,
    *,
    partition_mapping_for: dict[dg.AssetKey, dg.PartitionMapping],
    freshness_policy: dg.FreshnessPolicy | None = None,
) -> list[dg.AssetSpec]:
    names = {m.name for m in models}
    return [
        translator.asset_spec(
            m, names, partition_mapping_for=partition_mapping_for, freshness_policy=freshness_policy
        )
        for m in models
    ]


def audit_check_specs(
    models: Sequence[MartModel],
    translator: SightlineTranslator,
    partitions_def: dg.PartitionsDefinition | None,
) -> list[dg.AssetCheckSpec]:
    return [spec for m in models for spec in translator.audit_check_specs(m, partitions_def)]


def run_audits(
    ctx, models: Sequence[MartModel], translator: SightlineTranslator, start: datetime, end: datetime
) -> Iterator[dg.AssetCheckResult]:
    """Run every audit of `models` over [start, end) with SQLMesh and yield one check result per audit.

    Audits run against the snapshots deployed in `prod` (what the last build applied), not the local files.
    """
    env = ctx.state_reader.get_environment("prod")
    if env is None:
        raise RuntimeError("SQLMesh has no prod environment yet: build the marts once before auditing them")
    deployed = {s.name: s for s in ctx.state_reader.get_snapshots(env.snapshots).values()}
    for m in models:
        snapshot = deployed[ctx.get_model(m.name, raise_if_missing=True).fqn]
        results = ctx.snapshot_evaluator.audit(snapshot=snapshot, snapshots=deployed, start=start, end=end)
        by_key = {}
        for r in results:
            by_key.setdefault(r.audit.name, []).append(r)
        for key, a in translator.audit_checks(m):
            if not by_key.get(
                a.audit_name
            ):  # the deployed model lacks it: the build did not deploy these files
                yield dg.AssetCheckResult(
                    asset_key=key.asset_key,
                    check_name=key.name,
                    passed=False,
                    description=f"audit {a.audit_name} is not on the deployed {m.name}; rebuild the marts",
                )
                continue
            r = by_key[a.audit_name].pop(0)  # SQLMesh returns them in the model's audit order
            failed = int(r.count or 0)
            meta = {
                "failing rows": failed,
                "window": f"{start.isoformat()} .. {end.isoformat()}",
                "skipped": bool(r.skipped),
            }
            if r.query is not None:
                meta["query"] = dg.MetadataValue.md(f"```sql\n{r.query.sql(pretty=True)}\n```")
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=failed == 0,
                severity=dg.AssetCheckSeverity.ERROR if a.blocking else dg.AssetCheckSeverity.WARN,
                metadata=meta,
                description=None if failed == 0 else f"{failed} rows break `{a.audit_name}({a.args})`",
            )


def audit_outcome_checks(
    models: Sequence[MartModel], translator: SightlineTranslator, outcomes: Sequence
) -> Iterator[dg.AssetCheckResult]:
    """Check results from `ingestion.transform`'s audit outcomes (model, audit, passed, failures, blocking).

    A model may carry the same audit twice with different arguments; outcomes of one audit name are
    matched to that model's checks in the order SQLMesh lists them.
    """
    pending: dict[tuple[str, str], list] = {}
    for o in outcomes:
        pending.setdefault((_schema_table(o.model), o.audit), []).append(o)
    for m in models:
        for key, a in translator.audit_checks(m):
            queue = pending.get((m.name, a.audit_name))
            if not queue:
                continue  # not evaluated in this build (e.g. a view's audit); nothing to report
            o = queue.pop(0)
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=o.passed,
                severity=dg.AssetCheckSeverity.ERROR if a.blocking else dg.AssetCheckSeverity.WARN,
                metadata={"failing rows": int(o.failures), "audit": f"{a.audit_name}({a.args})"},
                description=None if o.passed else f"{o.failures} rows break `{a.audit_name}({a.args})`",
            )
