"""Quality checks as Dagster asset checks: every Great Expectations suite and SQL reconciliation of
`quality` becomes a check on the asset whose table it guards, evaluated per partition.

- raw checks (raw.detections on `raw_detections`, raw.camera_health on `camera_health`) run per day x camera;
  mart checks on `analytics/<table>` per day.
- One multi-asset check op per table: the partition's rows are read once and every suite of that table is
  validated against them. Great Expectations is imported inside the op, never when the definitions load.
- Critical checks are `blocking`: in a run that also materialises downstream assets, those do not build.
  Raw (day x camera) and marts (day) are different partitionings, so they never share a run; the marts of a
  day are gated across runs by `raw_blocking_failures`, which the marts asset consults
  (orchestration/assets/marts.py).
- Metadata a person can act on: failed expectations, unexpected counts, a few offending rows, and the
  result's page (quality/docs_site.py, plain HTML that works offline; it links Great Expectations' Data Docs
  page of the validation), under data/gx_docs or $SIGHTLINE_GX_DOCS_DIR.

Wiring (orchestration/definitions.py):
`asset_checks=build_quality_checks(site, days, day_camera, translator, asset_keys=<keys of the assets>)`;
the SightlineTranslator (orchestration/translator.py) says which asset guards which table.
"""

# No `from __future__ import annotations`: Dagster inspects the check op's context annotation when defined.
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date

import dagster as dg
from dagster import AssetCheckExecutionContext

from ingestion.site import Site
from orchestration.assets.ingestion import WAREHOUSE_POOL
from orchestration.partitions import day_camera_key, days_of_range, split_day_camera_key
from orchestration.resources import SiteResource, WarehouseResource
from orchestration.translator import SightlineTranslator
from quality.partition import Partition
from quality.results import CheckResult
from quality.runner import CHECKS, TABLES, checks_for, docs_dir, docs_index

MAX_FAILURE_LINES = 10


def check_metadata(result: CheckResult) -> dict:
    """Metadata a person can act on, from a quality CheckResult."""
    meta: dict = {
        "partition": result.partition,
        "table": result.table,
        "severity": result.severity,
        "unexpected count": result.unexpected_count,
        "observed": dg.MetadataValue.json(result.observed),
    }
    if result.failed_expectations:
        lines = result.failed_expectations[:MAX_FAILURE_LINES]
        more = len(result.failed_expectations) - len(lines)
        meta["failed expectations"] = dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in lines) + (f"\n- ... and {more} more" if more > 0 else "")
        )
    if result.offending_rows:
        meta["offending rows"] = dg.MetadataValue.md(_markdown_rows(result.offending_rows))
    if result.docs_url:
        meta["data docs"] = dg.MetadataValue.url(result.docs_url)
        meta["all check results"] = dg.MetadataValue.path(str(docs_index()))
    return meta


def _markdown_rows(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(c for row in rows for c in row))

    def cell(value) -> str:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return text.replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    return head + "".join("\n| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows)


def _merge(results: Sequence[CheckResult]) -> CheckResult:
    """One result for a check evaluated over several days (a single-run backfill of the marts)."""
    if len(results) == 1:
        return results[0]
    failed = [r for r in results if not r.passed]
    first = results[0]
    return CheckResult(
        name=first.name,
        table=first.table,
        partition=f"{results[0].partition}..{results[-1].partition}",
        passed=not failed,
        severity=first.severity,
        description=first.description,
        observed={"days": len(results), "failed days": [r.partition for r in failed]},
        failed_expectations=[f"{r.partition}: {line}" for r in failed for line in r.failed_expectations],
        unexpected_count=sum(r.unexpected_count for r in results),
        offending_rows=[row for r in failed for row in r.offending_rows][:5],
        docs_url=next((r.docs_url for r in failed if r.docs_url), first.docs_url),
    )


def _table_check(
    table: str, partitions_def: dg.PartitionsDefinition, per_camera: bool, translator: SightlineTranslator
) -> dg.AssetChecksDefinition:
    checks = checks_for(table)
    specs = [translator.quality_check_spec(c, partitions_def) for c in checks]
    key = translator.asset_key(table)
    op_name = f"quality_{table.replace('.', '_')}"

    @dg.multi_asset_check(
        name=op_name,
        specs=specs,
        can_subset=True,
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations suites and reconciliations guarding {table}.",
    )
    def _run(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource, site: SiteResource
    ) -> Iterator[dg.AssetCheckResult]:
        from quality.runner import new_validator, run_table_checks

        s = site.load()
        if per_camera:
            day, camera_id = split_day_camera_key(context.partition_key)
            partitions = [Partition(s, day, camera_id)]
        else:
            keys = context.partition_keys
            partitions = [Partition(s, d) for d in days_of_range(keys[0], keys[-1])]
        validator = new_validator(docs_dir())
        by_name: dict[str, list[CheckResult]] = {}
        with warehouse.connect() as wh:
            for partition in partitions:
                for result in run_table_checks(wh, partition, table, validator=validator):
                    by_name.setdefault(result.name, []).append(result)
        selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
        for check in checks:
            if check.name not in selected:
                continue
            result = _merge(by_name[check.name])
            if not result.passed:
                context.log.warning(
                    "%s %s on %s: %s", check.name, result.status, result.partition, result.summary()
                )
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=check.name,
                passed=result.passed,
                severity=dg.AssetCheckSeverity.ERROR if result.blocking else dg.AssetCheckSeverity.WARN,
                description=check.description,
                metadata=check_metadata(result),
            )

    return _run


def build_quality_checks(
    site: Site,
    day_partitions: dg.PartitionsDefinition,
    day_camera_partitions: dg.PartitionsDefinition,
    translator: SightlineTranslator,
    asset_keys: Iterable[dg.AssetKey] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check per guarded table. `asset_keys`, when given, limits them to assets that exist."""
    present = set(asset_keys) if asset_keys is not None else None
    out = []
    for table in TABLES:
        if present is not None and translator.asset_key(table) not in present:
            continue
        per_camera = all(c.per_camera for c in checks_for(table))
        partitions_def = day_camera_partitions if per_camera else day_partitions
        out.append(_table_check(table, partitions_def, per_camera, translator))
    return out


def blocking_check_keys(
    translator: SightlineTranslator, table: str = "raw.detections"
) -> list[dg.AssetCheckKey]:
    key = translator.asset_key(table)
    return [dg.AssetCheckKey(key, c.name) for c in CHECKS if c.table == table and c.severity == "critical"]


def raw_blocking_failures(
    instance: dg.DagsterInstance,
    site: Site,
    days: Iterable[date],
    check_keys: Sequence[dg.AssetCheckKey] | None = None,
) -> list[str]:
    """Blocking raw.detections checks whose latest evaluation failed, for any camera of these days.

    The marts of a day must not build while one of these is failing: the marts asset refuses to build
    them (fix the data, re-land or re-run the checks, then build). A failure stays blocking until the
    check passes on that partition again, even if the partition was re-landed without running its checks.
    `check_keys`: the blocking raw.detections checks, as the code location defines them (default:
    `blocking_check_keys` of the default SightlineTranslator). Returns lines like
    `camera_activity failed on CAM01|2025-01-15`.
    """
    partition_keys = [str(day_camera_key(d, cam)) for d in days for cam in site.camera_ids]
    if not partition_keys:
        return []
    infos = instance.event_log_storage.get_asset_check_partition_info(
        list(check_keys) if check_keys is not None else blocking_check_keys(SightlineTranslator()),
        partition_keys=partition_keys,
    )
    return sorted(
        f"{info.check_key.name} failed on {info.partition_key}"
        for info in infos
        if info.latest_execution_status.value == "FAILED"  # the check ran and did not pass
    )
