"""Landing throughput: our layer vs raw psycopg binary COPY (the floor) vs naive executemany, same rows.

    .venv/bin/python bench/landing.py [--rows 1000000] [--pg-admin-url postgresql://postgres@127.0.0.1/postgres]

One run lands the same simulated detections into DuckDB and PostgreSQL through `append_batch`
(validation, duplicate check, ledger, watermarks included), and into the same PostgreSQL table with (a)
psycopg binary COPY fed row by row with `write_row` and (b) `executemany` on a sample, extrapolated. Each
timing is the best of `--repeat` runs into an emptied table. Prints rows/s and the ratios the targets are
about (>= 80% of COPY, >= 20x executemany).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from datetime import time as dtime
from pathlib import Path

import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.schema import DETECTION_COLUMNS, DETECTION_SCHEMA  # noqa: E402
from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import Site, load_site  # noqa: E402
from ingestion.warehouse import connect, ddl, pg_binary  # noqa: E402

DAY = date(2025, 1, 15)
COLUMNS = list(DETECTION_SCHEMA.names())
INSERT = f"INSERT INTO raw.detections ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


def bench_rows(site: Site, n: int) -> tuple[pl.DataFrame, str]:
    """About n detections of one site-day, from the simulator."""
    fps, window = 5.0, (dtime(8), dtime(10))
    rows = simulate(site, start=DAY, days=1, fps=fps, noise="realistic", seed=0, window=window).detections
    if rows.height < n:
        fps, window = 10.0, None
        rows = simulate(site, start=DAY, days=1, fps=fps, noise="realistic", seed=0).detections
    span = f"{window[0]:%H:%M}-{window[1]:%H:%M}" if window else "the whole day"
    return rows.head(n), f"simulator: 4 cameras, {span} at {fps:g} fps, realistic noise, first {n:,} rows"


def best_of(repeat: int, reset: Callable[[], None], run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        reset()
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="rows for executemany (extrapolated)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    site = load_site()
    rows, origin = bench_rows(site, args.rows)
    rows = rows.with_columns(pl.lit("bench").alias("batch_id"))
    n = rows.height
    sample = rows.head(args.sample)
    print(f"rows: {n:,} ({origin})", flush=True)
    results: dict[str, float] = {}  # name -> rows/s

    # ---------------------------------------------------------------------------------- DuckDB
    with tempfile.TemporaryDirectory() as tmp:
        wh = connect(f"duckdb:///{tmp}/bench.duckdb", site)
        wh.setup()
        batch_no = iter(range(1_000_000))

        def duck_reset() -> None:
            wh.con.execute("DELETE FROM raw.detections")

        t = best_of(
            args.repeat, duck_reset, lambda: wh.append_batch(f"d{next(batch_no)}", rows, source="bench")
        )
        results["duckdb: our layer (Arrow)"] = n / t
        wh.con.register("bench_arrow", rows.to_arrow())
        t = best_of(
            args.repeat,
            duck_reset,
            lambda: wh.con.execute(
                f"INSERT INTO raw.detections SELECT {', '.join(COLUMNS)} FROM bench_arrow"
            ),
        )
        results["duckdb: bare INSERT ... SELECT from Arrow"] = n / t
        small = sample.head(max(1, args.sample // 10))
        t = best_of(1, duck_reset, lambda: wh.con.executemany(INSERT.replace("%s", "?"), small.rows()))
        results["duckdb: executemany (sample, extrapolated)"] = small.height / t
        wh.close()
    print("duckdb done", flush=True)

    # ---------------------------------------------------------------------------------- PostgreSQL
    db = f"sightline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{db}"
    try:
        wh = connect(url, site)
        wh.setup()
        conn = wh.conn
        batch_no = iter(range(1_000_000))

        def pg_reset() -> None:
            conn.execute("TRUNCATE raw.detections")

        t = best_of(
            args.repeat, pg_reset, lambda: wh.append_batch(f"p{next(batch_no)}", rows, source="bench")
        )
        results["postgres: our layer (vectorised binary COPY)"] = n / t
        types = [spec[1] for spec in DETECTION_COLUMNS.values()]

        def raw_copy() -> None:
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY raw.detections ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(types)
                for row in rows.iter_rows():
                    copy.write_row(row)

        t = best_of(args.repeat, pg_reset, raw_copy)
        results["postgres: (a) psycopg binary COPY, write_row"] = n / t

        payload = b"".join(pg_binary.encode(rows, ddl.DETECTIONS.pg_copy_columns()))

        def server_only() -> None:  # bytes ready in memory: what the server alone can ingest
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY raw.detections ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(payload)

        t = best_of(args.repeat, pg_reset, server_only)
        results["postgres: server ceiling (pre-encoded COPY bytes)"] = n / t

        def naive() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT, sample.rows())

        t = best_of(1, pg_reset, naive)
        results["postgres: (b) executemany (sample, extrapolated)"] = sample.height / t
        wh.close()
    finally:
        with psycopg.connect(args.pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    # ---------------------------------------------------------------------------------- report
    width = max(map(len, results))
    print(f"\n{'path':<{width}}  {'rows/s':>12}")
    for name, rate in results.items():
        print(f"{name:<{width}}  {rate:>12,.0f}")
    ours_pg = results["postgres: our layer (vectorised binary COPY)"]
    floor = results["postgres: (a) psycopg binary COPY, write_row"]
    naive_pg = results["postgres: (b) executemany (sample, extrapolated)"]
    ours_duck = results["duckdb: our layer (Arrow)"]
    print(f"\npostgres: our layer / binary COPY floor = {ours_pg / floor:.2f}x (target >= 0.80)")
    print(f"postgres: our layer / executemany      = {ours_pg / naive_pg:.1f}x (target >= 20)")
    ceiling = results["postgres: server ceiling (pre-encoded COPY bytes)"]
    print(
        f"postgres: our layer / server ceiling   = {ours_pg / ceiling:.2f}x; "
        f"the ceiling itself is {ceiling / naive_pg:.1f}x executemany"
    )
    print(
        f"duckdb:   our layer / executemany      = "
        f"{ours_duck / results['duckdb: executemany (sample, extrapolated)']:.0f}x"
    )
    print(
        f"duckdb:   our layer / bare Arrow insert = "
        f"{ours_duck / results['duckdb: bare INSERT ... SELECT from Arrow']:.2f}x"
    )
    print(f"duckdb:   our layer / postgres floor    = {ours_duck / floor:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
