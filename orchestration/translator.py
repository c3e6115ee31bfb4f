"""The one mapping between the warehouse and Dagster: which asset a table (a SQLMesh model, a landed raw or
reference table) is, its group, its asset spec, and the asset checks of its SQLMesh audits and quality
suites. The marts asset, the audit checks, the quality checks, the alerts asset and the sensors all ask a
`SightlineTranslator` (built once in orchestration/definitions.py), in the manner of dagster-dbt's
DagsterDbtTranslator: subclass it and pass it to `build_definitions` to map things differently.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from orchestration.sqlmesh_models import AuditCheck, MartModel
    from quality.runner import CheckDef

# The landing layer's assets (orchestration/assets/ingestion.py).
RAW_DETECTIONS = dg.AssetKey("raw_detections")
CAMERA_HEALTH = dg.AssetKey("camera_health")
SITE_REFERENCE = dg.AssetKey("site_reference")
INGESTION_GROUP = "ingestion"
MARTS_GROUP = "transforms"


class SightlineTranslator:
    """Asset keys, groups and check names of the warehouse's tables and SQLMesh models."""

    # Landed tables with an asset of their own; other raw.* tables (raw.ingest_batches, raw.days_to_rebuild,
    # ...) are written with the detections, and every ref.* table by the site reference asset.
    landed_assets: Mapping[str, dg.AssetKey] = {
        "raw.detections": RAW_DETECTIONS,
        "raw.camera_health": CAMERA_HEALTH,
    }

    def asset_key(self, table: str) -> dg.AssetKey:
        """The Dagster asset of a warehouse table `schema.table`: landed tables by their asset, every other
        table (the SQLMesh marts) as `<schema>/<table>`."""
        if table in self.landed_assets:
            return self.landed_assets[table]
        schema = table.split(".")[0]
        if schema == "ref":
            return SITE_REFERENCE
        if schema == "raw":
            return RAW_DETECTIONS
        return dg.AssetKey(table.split("."))

    def dependency_key(self, table: str, model_names: set[str]) -> dg.AssetKey:
        """The Dagster asset a SQLMesh model's dependency stands for: another model of the project, or the
        asset that lands the EXTERNAL raw/ref table."""
        if table not in model_names and table.split(".")[0] not in ("raw", "ref"):
            raise ValueError(
                f"SQLMesh dependency {table!r} is neither a model of the project nor a raw/ref table; "
                "declare it as an EXTERNAL model under raw.* or ref.* in transforms/"
            )
        return self.asset_key(table)

    def group_name(self, model: MartModel) -> str:
        return MARTS_GROUP

    def description(self, model: MartModel) -> str:
        return model.description or f"SQLMesh model {model.name}"

    def metadata(self, model: MartModel) -> dict:
        return {
            "sqlmesh/model": model.name,
            "sqlmesh/kind": model.kind,
            "sqlmesh/time_column": model.time_column or "",
            "dagster/column_schema": column_schema(model),
        }

    def asset_spec(
        self,
        model: MartModel,
        model_names: set[str],
        *,
        partition_mapping_for: Mapping[dg.AssetKey, dg.PartitionMapping] | None = None,
        freshness_policy: dg.FreshnessPolicy | None = None,
    ) -> dg.AssetSpec:
        """The model's asset: its upstream models and landed tables as dependencies (with the partition
        mapping given for that upstream asset, if any)."""
        mappings = partition_mapping_for or {}
        deps: dict[dg.AssetKey, dg.AssetDep] = {}
        for up in model.upstream:
            key = self.dependency_key(up, model_names)
            deps.setdefault(key, dg.AssetDep(key, partition_mapping=mappings.get(key)))
        return dg.AssetSpec(
            self.asset_key(model.name),
            deps=list(deps.values()),
            description=self.description(model),
            group_name=self.group_name(model),
            kinds={"sqlmesh", "sql"},
            freshness_policy=freshness_policy,
            metadata=self.metadata(model),
        )

    def audit_checks(self, model: MartModel) -> list[tuple[dg.AssetCheckKey, AuditCheck]]:
        """Each SQLMesh audit of the model with its asset check's key. The check is named after the audit,
        plus the columns it looks at when the model carries that audit more than once
        (accepted_range__productivity); names are unique per model."""
        key = self.asset_key(model.name)
        counts = Counter(a.audit_name for a in model.audits)
        taken: set[str] = set()
        out = []
        for a in model.audits:
            name = a.audit_name
            if counts[a.audit_name] > 1:
                column_args = [v for k, v in a.arg_sql if k in ("column", "columns")] or [
                    v for _, v in a.arg_sql
                ]
                cols = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(column_args))
                name = "__".join([a.audit_name, *cols])[:100]
            base, i = name, 2
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            out.append((dg.AssetCheckKey(key, name), a))
        return out

    def audit_check_specs(
        self, model: MartModel, partitions_def: dg.PartitionsDefinition | None
    ) -> list[dg.AssetCheckSpec]:
        return [
            dg.AssetCheckSpec(
                key.name,
                asset=key.asset_key,
                blocking=a.blocking,
                partitions_def=partitions_def,
                description=f"SQLMesh audit `{a.audit_name}({a.args})` on {model.name}: "
                "passes when it finds no rows",
                metadata={"sqlmesh/audit": a.audit_name},
            )
            for key, a in self.audit_checks(model)
        ]

    def quality_check_spec(
        self, check: CheckDef, partitions_def: dg.PartitionsDefinition
    ) -> dg.AssetCheckSpec:
        """A Great Expectations suite or reconciliation (quality/runner.py) as a check on its table's asset;
        critical ones block."""
        return dg.AssetCheckSpec(
            check.name,
            asset=self.asset_key(check.table),
            description=check.description,
            blocking=check.severity == "critical",
            partitions_def=partitions_def,
            metadata={"quality/severity": check.severity, "quality/table": check.table},
        )


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
