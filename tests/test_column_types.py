"""Typed columns in the Dagster UI (issue 15, item 3): every mart asset's column schema carries the type
SQLMesh knows for it (`columns_to_types`), none is left "string"/unknown, and the types are the ones the
built warehouse really has, on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import psycopg
import pytest
import sqlglot.expressions as exp

from ingestion.transform import duckdb_path, sqlmesh_context
from orchestration.definitions import build_definitions
from orchestration.sqlmesh_models import load_mart_models

DAY = date(2025, 1, 15)
SCHEMA_KEY = "dagster/column_schema"


def _sqlmesh_types(site) -> dict[str, dict[str, str]]:
    """schema.table -> column -> SQL type, read from SQLMesh directly (not through the translator)."""
    ctx = sqlmesh_context(None, site)
    try:
        out = {}
        for model in ctx.models.values():
            if model.kind.is_external:
                continue
            name = ".".join(p.strip('"') for p in model.name.split(".")[-2:])
            out[name] = {c: t.sql(dialect=model.dialect) for c, t in (model.columns_to_types or {}).items()}
        return out
    finally:
        ctx.close()


def test_every_mart_asset_shows_sqlmesh_types(site):
    expected = _sqlmesh_types(site)
    defs = build_definitions()
    assert {m.name for m in load_mart_models()} == set(expected)
    for name, columns in expected.items():
        key = dg.AssetKey(name.split("."))
        spec = next(s for s in defs.resolve_assets_def(key).specs if s.key == key)
        schema: dg.TableSchema = spec.metadata[SCHEMA_KEY]
        shown = {c.name: c.type for c in schema.columns}
        assert shown == columns, name
        unknown = [c for c, t in shown.items() if t.upper() in ("UNKNOWN", "STRING", "NULL", "")]
        assert not unknown, f"{name}: SQLMesh cannot infer the type of {unknown}; CAST them in the model"
        # Descriptions are kept next to the types.
        assert any(c.description for c in schema.columns), name


def _base_type(sql_type: str, dialect: str) -> exp.DType:
    return exp.DataType.build(sql_type, dialect=dialect).this


@pytest.fixture(scope="module")
def built(clean_day_marts):
    """CAM01's day, landed and built on both backends (only the catalog is read: the session's clean day of
    test_transforms, conftest.py, serves)."""
    _, duck, pg, _ = clean_day_marts
    return {"duckdb": duck, "postgres": pg}


def _catalog(url: str) -> dict[str, dict[str, str]]:
    sql = (
        "SELECT table_schema || '.' || table_name AS t, column_name, data_type "
        "FROM information_schema.columns WHERE table_schema IN ('analytics', 'staging')"
    )
    if url.startswith("duckdb"):
        import duckdb

        with duckdb.connect(duckdb_path(url), read_only=True) as con:
            rows = con.execute(sql).fetchall()
    else:
        with psycopg.connect(url) as con:
            rows = con.execute(sql).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        out.setdefault(table, {})[column] = data_type
    return out


# The same type in both engines under other names: a string literal is `character varying` (no length) in
# PostgreSQL, i.e. TEXT; DuckDB's TIMESTAMP is `timestamp without time zone`; JSON is stored as jsonb there.
EQUIVALENT = [
    {exp.DType.TEXT, exp.DType.VARCHAR},
    {exp.DType.TIMESTAMP, exp.DType.TIMESTAMPNTZ},
    {exp.DType.JSON, exp.DType.JSONB},
]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_shown_types_are_the_warehouse_types(site, built, backend):
    url = built[backend]
    catalog = _catalog(url)
    dialect = "duckdb" if backend == "duckdb" else "postgres"
    mismatched = []
    for model in load_mart_models():
        actual = catalog[model.name]
        assert set(actual) == set(model.columns), model.name
        for column, declared in model.column_types:
            want, got = _base_type(declared, "duckdb"), _base_type(actual[column], dialect)
            if want != got and not any({want, got} <= s for s in EQUIVALENT):
                mismatched.append(f"{model.name}.{column}: shown {declared}, {backend} has {actual[column]}")
    assert not mismatched, "\n".join(mismatched)
