"""Benchmark of the week/month rollups (ingestion/rollups.py; bench/README.md, "Rollups").

A synthetic daily zone table (`--days` site-local days x `--zones` zones, the columns of
analytics.daily_zone_stats) stands in for the daily mart on DuckDB and PostgreSQL; the rollup spec is
pointed at it (the same switch a change of daily source needs). Timed per backend:
- full: every week and month of the history recomputed at once (what a non-incremental rollup pays);
- one day: the week and month holding one day recomputed (what build_marts pays per day built).
The result checks that both ways give the same rows. Ratios, not absolute times: the machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.rollups import ZONE_ROLLUP, refresh_rollups  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FIRST = date(2024, 1, 1)


def daily_frame(days: int, zones: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * zones
    day = np.repeat(np.arange(days), zones)
    return pl.DataFrame(
        {
            "local_date": [FIRST + timedelta(days=int(d)) for d in day],
            "zone_id": [f"Z{z:03d}" for z in np.tile(np.arange(zones), days)],
            "zone_name": "zone",
            "zone_type": "work_area",
            "camera_id": "CAM01",
            "sessions": rng.integers(0, 200, n),
            "unique_visitors": rng.integers(0, 10, n),
            "total_dwell_seconds": rng.random(n) * 3e4,
            "total_active_seconds": rng.random(n) * 2e4,
            "total_idle_seconds": rng.random(n) * 1e4,
            "occupied_seconds": rng.random(n) * 3e4,
            "scheduled_seconds": np.full(n, 30600.0),
            "utilization": rng.random(n),
            "anomalies": rng.integers(0, 5, n),
            "peak_people": rng.integers(0, 6, n).astype(np.int32),
        }
    )


def run(backend: str, frame: pl.DataFrame, repeats: int) -> dict[str, float]:
    spec = replace(ZONE_ROLLUP, source="bench.daily", table="bench.rollup")
    days = sorted(set(frame["local_date"].to_list()))
    if backend == "duckdb":
        conn = duckdb.connect()
        conn.execute("CREATE SCHEMA bench")
        conn.register("frame", frame.to_arrow())
        conn.execute("CREATE TABLE bench.daily AS SELECT * FROM frame")
        execute, fetch, close = conn.execute, lambda sql: conn.execute(sql).fetchall(), conn.close
    else:
        name = f"sightline_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        conn = psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", autocommit=True)
        conn.execute("CREATE SCHEMA bench")
        cols = ", ".join(
            f"{c} {t}"
            for c, t in (
                ("local_date", "date"),
                ("zone_id", "text"),
                ("zone_name", "text"),
                ("zone_type", "text"),
                ("camera_id", "text"),
                ("sessions", "bigint"),
                ("unique_visitors", "bigint"),
                ("total_dwell_seconds", "float8"),
                ("total_active_seconds", "float8"),
                ("total_idle_seconds", "float8"),
                ("occupied_seconds", "float8"),
                ("scheduled_seconds", "float8"),
                ("utilization", "float8"),
                ("anomalies", "bigint"),
                ("peak_people", "integer"),
            )
        )
        conn.execute(f"CREATE TABLE bench.daily ({cols})")
        with conn.cursor().copy(f"COPY bench.daily ({', '.join(frame.columns)}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
        conn.execute("ANALYZE bench.daily")
        execute, fetch = conn.execute, lambda sql: conn.execute(sql).fetchall()

        def close():
            conn.close()
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    try:
        timings = {"full": [], "one_day": []}
        for _ in range(repeats):
            timings["full"].append(refresh_rollups(execute, backend, days, (spec,)).seconds)
            full_rows = sorted(fetch("SELECT grain, period_start, zone_id, sessions FROM bench.rollup"))
            timings["one_day"].append(
                refresh_rollups(execute, backend, [days[len(days) // 2]], (spec,)).seconds
            )
            assert (
                sorted(fetch("SELECT grain, period_start, zone_id, sessions FROM bench.rollup")) == full_rows
            )
        return {k: float(np.median(v)) for k, v in timings.items()} | {"rows": len(full_rows)}
    finally:
        close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--zones", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = daily_frame(args.days, args.zones)
    print(f"daily rows: {frame.height} ({args.days} days x {args.zones} zones)")
    for backend in ("duckdb", "postgres"):
        r = run(backend, frame, args.repeats)
        print(
            f"{backend:<9} full recompute {r['full'] * 1000:8.1f} ms   one day (its week + month) "
            f"{r['one_day'] * 1000:7.1f} ms   ratio {r['full'] / r['one_day']:6.1f}x   "
            f"rollup rows {r['rows']}"
        )


if __name__ == "__main__":
    main()
