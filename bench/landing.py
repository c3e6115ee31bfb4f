"""Landing throughput: our layer vs raw psycopg binary COPY (the floor) vs naive executemany, same rows.

    .venv/bin/python bench/landing.py [--rows 1000000] [--rounds 5]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5433/postgres]   # repeat: one table per server

The same simulated detections land in DuckDB and in each PostgreSQL server (a TimescaleDB server gets a
hypertable) through `append_batch` (validation, duplicate check, ledger, watermarks included), and, into
the same table, through (a) psycopg binary COPY fed row by row with `write_row` (the floor), (c)
pre-encoded COPY bytes (the server ceiling: no Python at all) and (b) `executemany` on a sample,
extrapolated.

Order and warm-up must not decide the ratios, so the paths are measured alternately: one warm-up round
(not counted), then `--rounds` rounds, each running every path once, the starting path rotating from
round to round. Before every measurement the table is emptied (TRUNCATE; DuckDB: DELETE) and the server
checkpointed, so each path starts from the same table state and no path pays for flushing the previous
one's writes. Ratios are taken within a round and reported as the median with min-max over the rounds.

Exit status 2, with a message, when the result cannot be trusted: the median server ceiling below the
`write_row` floor (the pre-encoded bytes can only be faster than encoding them in Python on the way).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
COPY = f"COPY raw.detections ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"

OURS, FLOOR, CEILING, NAIVE = "our layer", "(a) write_row floor", "server ceiling", "(b) executemany"
DUCK_OURS, DUCK_BARE, DUCK_NAIVE = "our layer (Arrow)", "bare INSERT ... SELECT from Arrow", "executemany"


def bench_rows(site: Site, n: int) -> tuple[pl.DataFrame, str]:
    """About n detections of one site-day, from the simulator."""
    fps, window = 5.0, (dtime(8), dtime(10))
    rows = simulate(site, start=DAY, days=1, fps=fps, noise="realistic", seed=0, window=window).detections
    if rows.height < n:
        fps, window = 10.0, None
        rows = simulate(site, start=DAY, days=1, fps=fps, noise="realistic", seed=0).detections
    span = f"{window[0]:%H:%M}-{window[1]:%H:%M}" if window else "the whole day"
    return rows.head(n), f"simulator: 4 cameras, {span} at {fps:g} fps, realistic noise, first {n:,} rows"


class Lander:
    """One way of landing the rows: how many it lands per run, and the run itself."""

    def __init__(self, rows: int, run: Callable[[], None]):
        self.rows = rows
        self.run = run


def alternate(
    paths: dict[str, Lander], reset: Callable[[], None], rounds: int, label: str
) -> dict[str, list[float]]:
    """rows/s of every path in each counted round; round 0 is the warm-up and is dropped."""
    names = list(paths)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):
        start = r % len(names)  # rotate who goes first, so no path always follows the same one
        for name in names[start:] + names[:start]:
            reset()
            t0 = time.perf_counter()
            paths[name].run()
            elapsed = time.perf_counter() - t0
            if r:
                rates[name].append(paths[name].rows / elapsed)
        print(f"{label}: {'warm-up' if r == 0 else f'round {r}/{rounds}'} done", flush=True)
    return rates


def ratio(rates: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float]:
    """Median, min and max over rounds of a's rate / b's rate, each round's pair measured together."""
    per_round = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
    return statistics.median(per_round), min(per_round), max(per_round)


def fmt(r: tuple[float, float, float], digits: int = 2) -> str:
    return f"{r[0]:.{digits}f}x (rounds {r[1]:.{digits}f}-{r[2]:.{digits}f})"


def bench_duckdb(site: Site, rows: pl.DataFrame, sample: pl.DataFrame, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        wh = connect(f"duckdb:///{tmp}/bench.duckdb", site)
        wh.setup()
        batch_no = iter(range(1_000_000))
        wh.con.register("bench_arrow", rows.to_arrow())
        small = sample.head(max(1, sample.height // 10))

        def reset() -> None:
            wh.con.execute("DELETE FROM raw.detections")
            wh.con.execute("CHECKPOINT")

        paths = {
            DUCK_OURS: Lander(
                rows.height, lambda: wh.append_batch(f"d{next(batch_no)}", rows, source="bench")
            ),
            DUCK_BARE: Lander(
                rows.height,
                lambda: wh.con.execute(
                    f"INSERT INTO raw.detections SELECT {', '.join(COLUMNS)} FROM bench_arrow"
                ),
            ),
            DUCK_NAIVE: Lander(
                small.height, lambda: wh.con.executemany(INSERT.replace("%s", "?"), small.rows())
            ),
        }
        try:
            return alternate(paths, reset, rounds, "duckdb")
        finally:
            wh.close()


def bench_postgres(
    site: Site, rows: pl.DataFrame, sample: pl.DataFrame, rounds: int, admin_url: str
) -> tuple[dict[str, list[float]], str]:
    db = f"sightline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{db}"
    try:
        wh = connect(url, site)
        wh.setup()
        conn = wh.conn
        table = "TimescaleDB hypertable" if wh.timescaledb_enabled() else "partitioned table"
        batch_no = iter(range(1_000_000))
        types = [spec[1] for spec in DETECTION_COLUMNS.values()]
        payload = b"".join(pg_binary.encode(rows, ddl.DETECTIONS.pg_copy_columns()))

        def reset() -> None:
            conn.execute("TRUNCATE raw.detections")
            conn.execute("CHECKPOINT")  # flush the previous path's writes now, not during the next one

        def floor() -> None:
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY) as copy:
                copy.set_types(types)
                for row in rows.iter_rows():
                    copy.write_row(row)

        def ceiling() -> None:  # bytes ready in memory: what the server alone can ingest
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY) as copy:
                copy.write(payload)

        def naive() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT, sample.rows())

        paths = {
            OURS: Lander(rows.height, lambda: wh.append_batch(f"p{next(batch_no)}", rows, source="bench")),
            FLOOR: Lander(rows.height, floor),
            CEILING: Lander(rows.height, ceiling),
            NAIVE: Lander(sample.height, naive),
        }
        try:
            return alternate(paths, reset, rounds, f"postgres {table}"), table
        finally:
            wh.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def print_rates(title: str, rates: dict[str, list[float]]) -> None:
    width = max(map(len, rates))
    print(f"\n{title}\n{'path':<{width}}  {'median rows/s':>14}  {'min-max':>21}")
    for name, values in rates.items():
        print(
            f"{name:<{width}}  {statistics.median(values):>14,.0f}  "
            f"{min(values):>10,.0f}-{max(values):<10,.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="rows for executemany (extrapolated)")
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds after one warm-up round")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument(
        "--pg-admin-url",
        action="append",
        help="a PostgreSQL server to measure (repeat for several; default SIGHTLINE_TEST_PG_ADMIN_URL "
        "or the local server on 5432)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    admin_urls = args.pg_admin_url or [
        os.environ.get("SIGHTLINE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    ]
    site = load_site()
    rows, origin = bench_rows(site, args.rows)
    rows = rows.with_columns(pl.lit("bench").alias("batch_id"))
    sample = rows.head(args.sample)
    print(f"rows: {rows.height:,} ({origin}); 1 warm-up + {args.rounds} rounds", flush=True)

    failures = []
    if not args.skip_duckdb:
        duck = bench_duckdb(site, rows, sample, args.rounds)
        print_rates("duckdb", duck)
        print(f"duckdb: our layer / executemany       = {fmt(ratio(duck, DUCK_OURS, DUCK_NAIVE), 0)}")
        print(f"duckdb: our layer / bare Arrow insert = {fmt(ratio(duck, DUCK_OURS, DUCK_BARE))}")
    for admin_url in admin_urls:
        pg, table = bench_postgres(site, rows, sample, args.rounds, admin_url)
        where = f"postgres ({table}, {admin_url.rsplit('@', 1)[-1].rsplit('/', 1)[0]})"
        print_rates(where, pg)
        ceiling_vs_floor = ratio(pg, CEILING, FLOOR)
        print(f"{where}: our layer / write_row floor  = {fmt(ratio(pg, OURS, FLOOR))} (target >= 0.90)")
        print(f"{where}: our layer / server ceiling   = {fmt(ratio(pg, OURS, CEILING))}")
        print(f"{where}: server ceiling / floor       = {fmt(ceiling_vs_floor)} (must be >= 1)")
        print(f"{where}: our layer / executemany      = {fmt(ratio(pg, OURS, NAIVE), 1)} (target >= 20)")
        if ceiling_vs_floor[0] < 1.0:
            failures.append(
                f"{where}: the server ceiling (pre-encoded bytes) came out at {fmt(ceiling_vs_floor)} of "
                "the write_row floor, below it: the measurement is dominated by something other than the "
                "paths (other load, checkpoints, autovacuum). Rerun on a quieter machine or with more "
                "--rounds"
            )
    for failure in failures:
        print(f"\nBENCHMARK INVALID: {failure}", file=sys.stderr)
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
