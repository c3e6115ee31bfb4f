"""The ten first questions of docs/bi.md, timed on PostgreSQL (as sightline_bi) and DuckDB.

One simulated site-day (all cameras of site.yaml, 08:00-17:00 at 1 fps) is landed and built in a throwaway
PostgreSQL database and DuckDB file; each question runs 5 times on a warm connection and the median is
printed, with its ratio to a `SELECT 1` round trip measured the same way in the same run.

    .venv/bin/python bench/bi_questions.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ADMIN_URL, create_database, drop_database  # noqa: E402
from test_bi import doc_queries  # noqa: E402
from test_transforms import land  # noqa: E402

from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import load_site  # noqa: E402
from ingestion.transform import build_marts  # noqa: E402
from ingestion.warehouse.roles import grant_bi  # noqa: E402

DAY = date(2025, 1, 15)
RUNS = 5


def median_ms(run: Callable[[], object]) -> float:
    samples = []
    for _ in range(RUNS):
        began = time.perf_counter()
        run()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def main() -> None:
    site = load_site(ROOT / "site.yaml")
    sim = simulate(site, start=DAY, days=1, cameras=list(site.camera_ids), fps=1.0, noise="none", seed=1)
    pg = create_database("sightline_bench_bi")
    role, password = f"bi_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    try:
        with tempfile.TemporaryDirectory() as tmp:
            duck = f"duckdb:///{tmp}/warehouse.duckdb"
            for url in (pg, duck):
                land(url, site, sim)
                build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
            grant_bi(pg, role, password)
            bi_url = pg.replace("postgresql://postgres@", f"postgresql://{role}:{password}@")
            with psycopg.connect(bi_url) as p, duckdb.connect(f"{tmp}/warehouse.duckdb", read_only=True) as d:
                base_pg = median_ms(lambda: p.execute("SELECT 1").fetchall())
                base_duck = median_ms(lambda: d.sql("SELECT 1").fetchall())
                print(f"baseline SELECT 1: PostgreSQL {base_pg:.2f} ms, DuckDB {base_duck:.2f} ms")
                print("| question | PostgreSQL ms | x SELECT 1 | DuckDB ms | x SELECT 1 |")
                print("|---|---:|---:|---:|---:|")
                for title, sql in doc_queries():
                    a = median_ms(lambda sql=sql: p.execute(sql).fetchall())
                    b = median_ms(lambda sql=sql: d.sql(sql).fetchall())
                    print(f"| {title} | {a:.1f} | {a / base_pg:.0f} | {b:.1f} | {b / base_duck:.0f} |")
    finally:
        drop_database(pg)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


if __name__ == "__main__":
    main()
