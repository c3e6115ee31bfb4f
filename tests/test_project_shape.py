"""One owner for the list of marts (issue 15, item 4): the models a build restates, counts and audits are
read from the SQLMesh project, so a model added under transforms/models is never silently left out. Checked
here against the model files themselves, parsed independently of SQLMesh. Also: SQLMesh's linter is on and
the project is clean under it, and the enumerations of the data contract have one source
(ingestion.vocabulary).
"""

from __future__ import annotations

import re

import pytest
from sqlmesh.core.model.common import ParsableSql
from sqlmesh.utils.errors import LinterError

from ingestion import transform, vocabulary
from ingestion.transform import LINT_RULES, TRANSFORMS_DIR, mart_models, sqlmesh_context, time_columns

NAME = re.compile(r"MODEL\s*\(\s*name\s+([\w.]+)", re.S)
TIME_RANGE = re.compile(r"kind\s+INCREMENTAL_BY_TIME_RANGE\s*\(\s*time_column\s+\(?\s*(\w+)", re.S | re.I)
PY_NAME = re.compile(r"@model\(\s*\"([\w.]+)\"")  # Python models (transforms/models/*.py)
PY_TIME_RANGE = re.compile(r"INCREMENTAL_BY_TIME_RANGE,\s*time_column=\"(\w+)\"")


def _files() -> dict[str, str | None]:
    """schema.table -> time column (None when not incremental by time range), from the model files."""
    out = {}
    for path in sorted((TRANSFORMS_DIR / "models").glob("*.sql")):
        text = path.read_text()
        name = NAME.search(text).group(1)
        match = TIME_RANGE.search(text)
        out[name] = match.group(1) if match else None
    for path in sorted((TRANSFORMS_DIR / "models").glob("*.py")):
        text = path.read_text()
        if name := PY_NAME.search(text):
            match = PY_TIME_RANGE.search(text)
            out[name.group(1)] = match.group(1) if match else None
    return out


@pytest.fixture(scope="module")
def ctx(site):
    context = sqlmesh_context(None, site)
    yield context
    context.close()


def test_marts_and_time_columns_come_from_the_project(ctx):
    files = _files()
    models, columns = mart_models(ctx), time_columns(ctx)
    position = {m: i for i, m in enumerate(models)}
    # Dependency order: every model after what it reads.
    for fqn, model in ctx.models.items():
        if model.kind.is_external:
            continue
        name = ".".join(p.strip('"') for p in fqn.split(".")[-2:])
        for dep in model.depends_on:
            dep_name = ".".join(p.strip('"') for p in dep.split(".")[-2:])
            if dep_name in position:
                assert position[dep_name] < position[name], (dep_name, name)
    assert set(models) == set(files) and len(models) == len(files)
    assert columns == {m: c for m, c in files.items() if c is not None}
    # The module attributes other code imports are the same lists.
    assert transform.MART_MODELS == models and transform.TIME_COLUMNS == columns


def test_the_linter_is_on_and_the_project_passes_it(ctx):
    assert ctx.config.linter.enabled and ctx.config.linter.rules == set(LINT_RULES)
    assert ctx.lint_models(raise_on_error=False) == []
    # What it is there for: a model reading a column that does not exist stops the plan (build_marts plans
    # before it builds, so `sightline transform` fails on it).
    original = ctx.get_model("analytics.zones")
    try:
        bad = ParsableSql(sql="SELECT z.zone_id, z.no_such_column FROM ref.zones AS z")
        ctx.upsert_model("analytics.zones", query_=bad)
        with pytest.raises(LinterError):
            ctx.lint_models(["analytics.zones"])
    finally:
        ctx.upsert_model(original)
    assert ctx.lint_models(["analytics.zones"], raise_on_error=False) == []


def test_enumerations_have_one_source(ctx):
    from ingestion.alerts import rules
    from orchestration import report

    # Mappings keyed by an enumeration cover exactly its values.
    assert set(rules.DEFAULT_SEVERITIES) == set(vocabulary.ANOMALY_TYPES)
    assert set(rules.ANOMALY_TYPES.values()) == set(vocabulary.ANOMALY_TYPES)
    assert set(rules.DEFAULT_SEVERITIES.values()) <= set(vocabulary.SEVERITIES)
    assert set(report.STATUS_COLOURS) == set(vocabulary.COMPLETION_STATUSES)
    assert set(vocabulary.WORK_ZONE_TYPES) <= set(vocabulary.ZONE_TYPES)
    # The models' accepted_values audits read the vocabulary (@enum_values), never a literal list.
    checked = {}
    for model in ctx.models.values():
        for name, args in getattr(model, "audits", []):
            if name == "accepted_values":
                checked[(model.name.split(".")[-1], args["column"].sql())] = args["is_in"].sql()
    assert checked == {
        ("sessions", "status"): "@enum_values('session_status')",
        ("anomalies", "anomaly_type"): "@enum_values('anomaly_type')",
        ("anomalies", "severity"): "@enum_values('severity')",
        ("index_records", "completion_status"): "@enum_values('completion_status')",
        ("zone_presence", "scope"): "('zone', 'camera')",
        ("zones", "zone_type"): "@enum_values('zone_type')",
        ("daily_zone_stats", "zone_type"): "@enum_values('zone_type')",
    }
