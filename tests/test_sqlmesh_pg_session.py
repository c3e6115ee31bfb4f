"""The PostgreSQL sessions SQLMesh builds marts in get the settings of ingestion.sqlmesh_postgres."""

from __future__ import annotations

import pytest

from ingestion.sqlmesh_postgres import session_settings
from ingestion.transform import sqlmesh_context


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
