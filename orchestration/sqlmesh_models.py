"""Our small Dagster <-> SQLMesh bridge, on SQLMesh's own Python API.

- The SQLMesh project's DAG becomes Dagster asset specs: one asset per model (`analytics/<table>`), with
  dependencies from the model's `depends_on`; the EXTERNAL `raw.*` / `ref.*` tables map onto the Dagster
  assets that land them.
- Every audit attached to a model becomes an asset check on that model's asset (blocking when the
  SQLMesh audit is blocking), evaluated over exactly the window that was built.
- A day-partition window is built by `ingestion.transform` (the one way marts are built, shared with
  `sightline transform`); this module only reads the project's shape and runs its audits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import dagster as dg

# Where the landing layer's tables appear in Dagster: external SQLMesh models map onto these assets.
RAW_ASSET_BY_TABLE = {
    "raw.detections": "raw_detections",
    "raw.camera_health": "camera_health",
}
REF_ASSET = "site_reference"
RAW_DEFAULT_ASSET = "raw_detections"  # raw.ingest_batches, raw.days_to_rebuild...: written with detections


@dataclass(frozen=True)
class AuditCheck:
    check_name: str  # Dagster check name, unique per model
    audit_name: str  # SQLMesh audit name
    args: str  # the audit's arguments as SQL, for the description
    blocking: bool


@dataclass(frozen=True)
class MartModel:
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
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(self.name.split("."))

    @property
    def table(self) -> str:
        return self.name


def _schema_table(fqn_or_name: str) -> str:
    parts = [p.strip('"') for p in fqn_or_name.split(".")]
    return ".".join(parts[-2:])


def upstream_asset_key(name: str, mart_names: set[str]) -> dg.AssetKey:
    """The Dagster asset a SQLMesh dependency stands for."""
    if name in mart_names:
        return dg.AssetKey(name.split("."))
    if name in RAW_ASSET_BY_TABLE:
        return dg.AssetKey(RAW_ASSET_BY_TABLE[name])
    if name.startswith("ref."):
        return dg.AssetKey(REF_ASSET)
    if name.startswith("raw."):
        return dg.AssetKey(RAW_DEFAULT_ASSET)
    raise ValueError(
        f"SQLMesh dependency {name!r} is neither a model of the project nor a raw/ref table; "
        "declare it as an EXTERNAL model under raw.* or ref.* in transforms/"
    )


def _check_name(audit_name: str, args: dict, repeated: bool, taken: set[str]) -> str:
    """A readable, unique Dagster check name: the audit name, plus the columns it looks at when the model
    carries that audit more than once (accepted_range__productivity)."""
    name = audit_name
    if repeated:
        column_args = [v for k, v in args.items() if k in ("column", "columns")] or list(args.values())
        cols = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(_arg_sql(v) for v in column_args))
        name = "__".join([audit_name, *cols])[:100]
    base, i = name, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


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
    taken: set[str] = set()
    audits = []
    counts = Counter(audit.name for audit, _ in model.audits_with_args)
    for audit, args in model.audits_with_args:
        # A model-level `blocking := false` overrides the audit's own default (SQLMesh semantics).
        blocking = (
            _arg_sql(args["blocking"]).lower() not in ("false", "0") if "blocking" in args else audit.blocking
        )
        shown = {k: v for k, v in args.items() if k != "blocking"}
        audits.append(
            AuditCheck(
                _check_name(audit.name, shown, counts[audit.name] > 1, taken),
                audit.name,
                ", ".join(f"{k} := {_arg_sql(v)}" for k, v in shown.items()),
                blocking,
            )
        )
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
    *,
    partition_mapping_for: dict[str, dg.PartitionMapping],
    group_name: str,
    freshness_policy: dg.FreshnessPolicy | None = None,
) -> list[dg.AssetSpec]:
    names = {m.name for m in models}
    specs = []
    for m in models:
        deps = []
        for up in m.upstream:
            key = upstream_asset_key(up, names)
            mapping = partition_mapping_for.get(key.to_user_string())
            deps.append(dg.AssetDep(key, partition_mapping=mapping) if mapping else dg.AssetDep(key))
        specs.append(
            dg.AssetSpec(
                m.key,
                deps=_dedupe_deps(deps),
                description=m.description or f"SQLMesh model {m.name}",
                group_name=group_name,
                kinds={"sqlmesh", "sql"},
                freshness_policy=freshness_policy,
                metadata={
                    "sqlmesh/model": m.name,
                    "sqlmesh/kind": m.kind,
                    "sqlmesh/time_column": m.time_column or "",
                    "dagster/column_schema": column_schema(m),
                },
            )
        )
    return specs


def column_schema(model: MartModel) -> dg.TableSchema:
    """The model's columns with SQLMesh's types and descriptions (Dagster would show every type as
    "string" otherwise)."""
    types, descriptions = dict(model.column_types), dict(model.column_descriptions)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c, type=types.get(c, "unknown"), description=descriptions.get(c))
            for c in model.columns
        ]
    )


def _dedupe_deps(deps: list[dg.AssetDep]) -> list[dg.AssetDep]:
    seen, out = set(), []
    for d in deps:
        if d.asset_key not in seen:
            seen.add(d.asset_key)
            out.append(d)
    return out


def audit_check_specs(
    models: Sequence[MartModel], partitions_def: dg.PartitionsDefinition | None
) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            a.check_name,
            asset=m.key,
            blocking=a.blocking,
            partitions_def=partitions_def,
            description=f"SQLMesh audit `{a.audit_name}({a.args})` on {m.name}: passes when it finds no rows",
            metadata={"sqlmesh/audit": a.audit_name},
        )
        for m in models
        for a in m.audits
    ]


def run_audits(
    ctx, models: Sequence[MartModel], start: datetime, end: datetime
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
        for a in m.audits:
            if not by_key.get(
                a.audit_name
            ):  # the deployed model lacks it: the build did not deploy these files
                yield dg.AssetCheckResult(
                    asset_key=m.key,
                    check_name=a.check_name,
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
                asset_key=m.key,
                check_name=a.check_name,
                passed=failed == 0,
                severity=dg.AssetCheckSeverity.ERROR if a.blocking else dg.AssetCheckSeverity.WARN,
                metadata=meta,
                description=None if failed == 0 else f"{failed} rows break `{a.audit_name}({a.args})`",
            )


def audit_outcome_checks(models: Sequence[MartModel], outcomes: Sequence) -> Iterator[dg.AssetCheckResult]:
    """Check results from `ingestion.transform`'s audit outcomes (model, audit, passed, failures, blocking).

    A model may carry the same audit twice with different arguments; outcomes of one audit name are
    matched to that model's checks in the order SQLMesh lists them.
    """
    pending: dict[tuple[str, str], list] = {}
    for o in outcomes:
        pending.setdefault((_schema_table(o.model), o.audit), []).append(o)
    for m in models:
        for a in m.audits:
            queue = pending.get((m.name, a.audit_name))
            if not queue:
                continue  # not evaluated in this build (e.g. a view's audit); nothing to report
            o = queue.pop(0)
            yield dg.AssetCheckResult(
                asset_key=m.key,
                check_name=a.check_name,
                passed=o.passed,
                severity=dg.AssetCheckSeverity.ERROR if a.blocking else dg.AssetCheckSeverity.WARN,
                metadata={"failing rows": int(o.failures), "audit": f"{a.audit_name}({a.args})"},
                description=None if o.passed else f"{o.failures} rows break `{a.audit_name}({a.args})`",
            )
