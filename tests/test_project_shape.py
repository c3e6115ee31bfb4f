"""One owner for the list of marts (issue 15, item 4): the models a build restates, counts and audits are
read from the SQLMesh project, so a model added under transforms/models is never silently left out. Checked
here against the model files themselves, parsed independently of SQLMesh.
"""

from __future__ import annotations

import re

from ingestion import transform
from ingestion.transform import TRANSFORMS_DIR, mart_models, sqlmesh_context, time_columns

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


def test_marts_and_time_columns_come_from_the_project(site):
    files = _files()
    ctx = sqlmesh_context(None, site)
    try:
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
    finally:
        ctx.close()
    assert set(models) == set(files) and len(models) == len(files)
    assert columns == {m: c for m, c in files.items() if c is not None}
    # The module attributes other code imports are the same lists.
    assert transform.MART_MODELS == models and transform.TIME_COLUMNS == columns
