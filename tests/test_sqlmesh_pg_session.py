"""The PostgreSQL sessions SQLMesh builds marts in get the settings of ingestion.sqlmesh_postgres."""

from __future__ import annotations

import pytest

from ingestion.sqlmesh_postgres import concurrent_tasks, session_settings
from ingestion.transform import sqlmesh_config, sqlmesh_context


def test_sqlmesh_sessions_have_work_mem_and_no_jit(set_up_pg_url, site, monkeypatch):
    monkeypatch.setenv("SIGHTLINE_PG_WORK_MEM", "96MB")
    ctx = sqlmesh_context(set_up_pg_url, site)
    try:
        row = ctx.engine_adapter.fetchone("SELECT current_setting('work_mem'), current_setting('jit')")
    finally:
        ctx.close()
    assert row == ("96MB", "off")


def test_bad_work_mem_names_the_variable_and_the_fix(monkeypatch):
    monkeypatch.setenv("SIGHTLINE_PG_WORK_MEM", "lots")
    with pytest.raises(ValueError, match=r"SIGHTLINE_PG_WORK_MEM='lots'.*e\.g\. 256MB"):
        session_settings()


def test_concurrent_tasks_come_from_the_environment(monkeypatch):
    url = "postgresql://postgres@127.0.0.1:5432/sightline"
    monkeypatch.delenv("SIGHTLINE_PG_CONCURRENT_TASKS", raising=False)  # the default, whatever the shell set
    assert sqlmesh_config(url).gateways["postgres"].connection.concurrent_tasks == 2
    monkeypatch.setenv("SIGHTLINE_PG_CONCURRENT_TASKS", "3")
    assert sqlmesh_config(url).gateways["postgres"].connection.concurrent_tasks == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SIGHTLINE_PG_CONCURRENT_TASKS", bad)
        with pytest.raises(ValueError, match=rf"SIGHTLINE_PG_CONCURRENT_TASKS='{bad}'.*Fix: e\.g\. 2"):
            concurrent_tasks()


def test_a_python_models_frame_lands_exactly_with_missing_values_as_null(pg_url):
    """A Python model's DataFrame reaches PostgreSQL through the adapter's temporary-table load: every value
    as given, NaN/NaT/None as NULL (SQLMesh's default wrote NaT as an invalid literal), more rows than one
    page of the load, and no temporary table left behind."""
    import datetime as dt

    import pandas as pd
    from sqlglot import exp

    from ingestion.sqlmesh_postgres import SightlinePostgresConnectionConfig
    from ingestion.transform import postgres_params

    n = 25_003
    t0 = dt.datetime(2025, 1, 15, 1, 2, 3, 456789, tzinfo=dt.UTC)
    frame = pd.DataFrame(
        {
            "camera_id": [f"CAM '{i % 3}'\t\\x" for i in range(n)],
            "track_id": [2**40 + i for i in range(n)],
            "previous": [None if i % 2 else i for i in range(n)],
            "first_seen": [pd.NaT if i == 7 else t0 + dt.timedelta(seconds=i) for i in range(n)],
            "cost": [float("nan") if i % 5 == 0 else i / 8 for i in range(n)],
            "local_date": [None if i == 9 else dt.date(2025, 1, 15) for i in range(n)],
        }
    )
    types = {
        "camera_id": "text",
        "track_id": "bigint",
        "previous": "bigint",
        "first_seen": "timestamptz",
        "cost": "double precision",
        "local_date": "date",
    }
    columns = {c: exp.DataType.build(v, dialect="postgres") for c, v in types.items()}
    adapter = SightlinePostgresConnectionConfig(**postgres_params(pg_url)).create_engine_adapter()
    try:
        adapter.create_table("public.frame_target", columns)
        adapter.insert_append("public.frame_target", frame, target_columns_to_types=columns)
        rows = adapter.fetchall(
            "SELECT camera_id, track_id, previous, first_seen, cost, local_date "
            "FROM public.frame_target ORDER BY track_id"
        )
        temp_left = adapter.fetchone("SELECT COUNT(*) FROM pg_class WHERE relname LIKE 'sightline_df_%'")[0]
    finally:
        adapter.close()
    assert len(rows) == n and temp_left == 0
    for i in (0, 1, 5, 7, 9, n - 1):
        camera, track, previous, first_seen, cost, local_date = rows[i]
        assert camera == f"CAM '{i % 3}'\t\\x" and track == 2**40 + i
        assert previous == (None if i % 2 else i)
        assert first_seen == (None if i == 7 else t0 + dt.timedelta(seconds=i))
        assert cost == (None if i % 5 == 0 else i / 8)
        assert local_date == (None if i == 9 else dt.date(2025, 1, 15))
