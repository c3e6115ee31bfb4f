"""Benchmark of the SQLMesh marts (bench/README.md, "Transforms").

1. One simulated day of a 10-camera site (site.yaml's 4 cameras cloned, zones with them) at 5 fps, about
   12-13 million detections, on DuckDB: every mart through SQLMesh against the floor, a single
   hand-written sessionization query over the same rows. On PostgreSQL the demo site's day (4 cameras at
   5 fps, about 4.3-4.7 million detections; --pg-cameras/--pg-fps change it): landed once into a template
   database, then --rounds rounds, each on a fresh copy of it, floor and SQLMesh run alternating which
   goes first; medians over the rounds.
2. History: with 1, 7 and 30 days already built, the cost of the next day's incremental run. History days
   are day 1's rows shifted by whole days (SQL copies: landing 30 simulated days would dominate the run).

Ratios, not absolute times, are the result: the machine is shared. `--quick` runs a smaller version.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import psycopg
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import Site, load_site  # noqa: E402
from ingestion.transform import _analyze_sources, build_marts, duckdb_path, sqlmesh_context  # noqa: E402
from ingestion.warehouse import connect  # noqa: E402

DAY = date(2025, 1, 15)
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# The floor: visits of tracks to zones and their active/idle seconds, nothing else (no dedup, no status,
# no lookahead past midnight, no other mart). {interval} is the engine's spelling of session_gap_seconds.
FLOOR_SQL = """
CREATE TABLE floor_sessions AS
WITH z AS (
  SELECT camera_id, track_id, ts, zone_id, motion_score >= {idle} AS active,
         LAG(ts) OVER w AS prev_ts, LAG(zone_id) OVER w AS prev_zone
  FROM raw.detections
  WHERE zone_id IS NOT NULL AND ts >= '{start}' AND ts < '{end}'
  WINDOW w AS (PARTITION BY camera_id, track_id ORDER BY ts)
), v AS (
  SELECT *, SUM(CASE WHEN prev_ts IS NULL OR zone_id <> prev_zone OR ts - prev_ts > {gap} THEN 1 ELSE 0 END)
              OVER (PARTITION BY camera_id, track_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS visit
  FROM z
), s AS (
  SELECT *, LEAD(ts) OVER (PARTITION BY camera_id, track_id, visit ORDER BY ts) AS next_ts FROM v
)
SELECT camera_id, track_id, visit, MIN(zone_id) AS zone_id, MIN(ts) AS entry_time, MAX(ts) AS exit_time,
       SUM(CASE WHEN active THEN EXTRACT(EPOCH FROM next_ts) - EXTRACT(EPOCH FROM ts) END) AS active_seconds,
       SUM(CASE WHEN NOT active THEN EXTRACT(EPOCH FROM next_ts) - EXTRACT(EPOCH FROM ts) END) AS idle_seconds
FROM s
GROUP BY camera_id, track_id, visit
HAVING MAX(ts) - MIN(ts) >= {min_len}
"""


def cloned_site(site: Site, cameras: int) -> Site:
    """A site with `cameras` cameras: site.yaml's cameras and their zones repeated under new ids."""
    cams, zones = [], []
    for i in range(cameras):
        template = site.cameras[i % len(site.cameras)]
        cam_id = f"CAM{i + 1:02d}"
        cams.append(replace(template, id=cam_id, name=f"{template.name} #{i + 1}", source=f"sim://{cam_id}"))
        zones += [replace(z, id=f"{z.id}-{cam_id}", camera=cam_id) for z in site.zones_for(template.id)]
    return replace(site, cameras=tuple(cams), zones=tuple(zones), path="<bench: cloned site>")


def land(url: str, site: Site, sim) -> int:
    rows = 0
    with connect(url, site) as wh:
        wh.setup()
        parts = list(sim.camera_days())
        for camera_id, day, detections, health in tqdm(parts, desc="landing", unit="camera-day"):
            result = wh.replace_partition(camera_id, day, detections, source="bench", camera_health=health)
            rows += result.landed
    return rows


def read_count(url: str, sql: str, params: list) -> int:
    if url.startswith("duckdb"):
        with duckdb.connect(duckdb_path(url), read_only=True) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchone()[0]
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def simulated_day(cameras: int, fps: float, seed: int = 1, progress: bool = True):
    """The cloned site with `cameras` cameras and one simulated day (DAY) of it."""
    site = cloned_site(load_site(), cameras)
    return site, simulate(site, start=DAY, days=1, fps=fps, noise="realistic", seed=seed, progress=progress)


def day_sessions(url: str, site: Site) -> int:
    """Sessions the marts built for DAY (by entry time in the site's day)."""
    start, end = site.day_window(DAY)
    return read_count(
        url,
        "SELECT COUNT(*) FROM analytics.sessions WHERE entry_time >= %s AND entry_time < %s",
        [start, end],
    )


def floor_seconds(url: str, site: Site, session_settings: bool = False) -> tuple[float, int]:
    """Seconds of the floor query and its session count. `session_settings`: on PostgreSQL, the session
    settings SQLMesh's connections get (work_mem, jit), so floor and marts run under the same settings."""
    start, end = site.day_window(DAY)
    th = site.thresholds
    if url.startswith("duckdb"):
        sql = FLOOR_SQL.format(
            idle=th.idle_motion_score,
            start=start.isoformat(),
            end=end.isoformat(),
            gap=f"TO_MICROSECONDS({round(th.session_gap_seconds * 1e6)})",
            min_len=f"TO_MICROSECONDS({round(th.min_session_seconds * 1e6)})",
        )
        with duckdb.connect(duckdb_path(url)) as conn:
            conn.execute("DROP TABLE IF EXISTS floor_sessions")
            began = time.perf_counter()
            conn.execute(sql)
            elapsed = time.perf_counter() - began
            n = conn.execute("SELECT COUNT(*) FROM floor_sessions WHERE entry_time >= ?", [start]).fetchone()[
                0
            ]
            conn.execute("DROP TABLE floor_sessions")
        return elapsed, n
    sql = FLOOR_SQL.format(
        idle=th.idle_motion_score,
        start=start.isoformat(),
        end=end.isoformat(),
        gap=f"INTERVAL '{th.session_gap_seconds} seconds'",
        min_len=f"INTERVAL '{th.min_session_seconds} seconds'",
    )
    with psycopg.connect(url, autocommit=True) as conn:
        if session_settings:
            from ingestion.sqlmesh_postgres import session_settings as settings

            for name, value in settings().items():
                conn.execute(f"SET {name} = '{value}'")
        conn.execute("ANALYZE raw.detections")
        conn.execute("DROP TABLE IF EXISTS floor_sessions")
        began = time.perf_counter()
        conn.execute(sql)
        elapsed = time.perf_counter() - began
        n = conn.execute("SELECT COUNT(*) FROM floor_sessions WHERE entry_time >= %s", [start]).fetchone()[0]
        conn.execute("DROP TABLE floor_sessions")
    return elapsed, n


def model_seconds(url: str, site: Site, start: date, end: date) -> tuple[float, float]:
    """(seconds of the SQLMesh run of every mart, seconds including context loading and planning). The run
    starts one day early, as build_marts does for a day whose previous day is built (the lookback)."""
    began = time.perf_counter()
    ctx = sqlmesh_context(url, site)
    try:
        if ctx.engine_adapter.dialect == "postgres":
            _analyze_sources(ctx)  # as build_marts does: else the plans depend on when autovacuum ran
        ctx.plan("prod", skip_backfill=True, skip_tests=True, auto_apply=True, no_prompts=True)
        s, e = site.day_window(start)[0], site.day_window(end - timedelta(days=1))[1]
        fmt = "%Y-%m-%d %H:%M:%S"
        run_began = time.perf_counter()
        ctx.run("prod", start=(s - timedelta(days=1)).strftime(fmt), end=e.strftime(fmt), ignore_cron=True)
        done = time.perf_counter()
        return done - run_began, done - began
    finally:
        ctx.close()


def one_day(cameras: int, fps: float, workdir: Path) -> dict:
    """The DuckDB day: landed, the floor, then the SQLMesh run."""
    site, sim = simulated_day(cameras, fps)
    url = f"duckdb:///{workdir / f'bench_{cameras}.duckdb'}"
    rows = land(url, site, sim)
    floor, floor_n = floor_seconds(url, site)
    run, total = model_seconds(url, site, DAY, DAY + timedelta(days=1))
    return {
        "engine": "duckdb",
        "cameras": cameras,
        "rows": rows,
        "floor": floor,
        "floor_sessions": floor_n,
        "run": run,
        "total": total,
        "sessions": day_sessions(url, site),
    }


def postgres_rounds(cameras: int, fps: float, rounds: int) -> dict:
    """The PostgreSQL day: landed once into a template database, then `rounds` rounds on fresh copies of
    it (CREATE DATABASE ... TEMPLATE: every run is the first build of the day), floor and SQLMesh run
    alternating which goes first. Medians over the rounds; ratios are taken within a round."""
    site, sim = simulated_day(cameras, fps)
    base = ADMIN_URL.rsplit("/", 1)[0]
    template, copy = "sightline_bench_transforms_tpl", "sightline_bench_transforms"

    def recreate(name: str, from_template: str | None = None) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {from_template}" if from_template else ""))

    recreate(template)
    try:
        rows = land(f"{base}/{template}", site, sim)
        with psycopg.connect(f"{base}/{template}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        floors, runs, totals, ratios = [], [], [], []
        sessions = floor_n = 0
        for r in tqdm(range(rounds), desc="postgres rounds", unit="round"):
            recreate(copy, template)
            url = f"{base}/{copy}"
            for step in ("floor", "run") if r % 2 == 0 else ("run", "floor"):
                if step == "floor":
                    floor, floor_n = floor_seconds(url, site, session_settings=True)
                else:
                    run, total = model_seconds(url, site, DAY, DAY + timedelta(days=1))
            floors.append(floor)
            runs.append(run)
            totals.append(total)
            ratios.append(run / floor)
            sessions = day_sessions(url, site)
        return {
            "engine": "postgres",
            "cameras": cameras,
            "rows": rows,
            "floor": statistics.median(floors),
            "floor_sessions": floor_n,
            "run": statistics.median(runs),
            "total": statistics.median(totals),
            "sessions": sessions,
            "ratio": statistics.median(ratios),
            "ratio_range": (min(ratios), max(ratios)),
            "rounds": rounds,
        }
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for name in (copy, template):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def history(days_list: list[int], cameras: int, fps: float, workdir: Path) -> list[dict]:
    """For each history length H: days 1..H built, then the time of building day H+1."""
    site, sim = simulated_day(cameras, fps, seed=2, progress=False)
    out = []
    for h in days_list:
        url = f"duckdb:///{workdir / f'history_{h}.duckdb'}"
        land(url, site, sim)
        first = DAY - timedelta(days=h)
        with duckdb.connect(duckdb_path(url)) as conn:  # days before DAY: DAY's rows shifted back
            for k in range(1, h + 1):
                shift = f"INTERVAL {k} DAY"
                conn.execute(
                    f"""INSERT INTO raw.detections SELECT ts - {shift}, camera_id, frame_idx,
                    track_id - {k} * 1000000, class_id, confidence, x, y, w, h, zone_id, motion_score,
                    worker_id,
                    batch_id || ':minus{k}' FROM raw.detections WHERE ts >= ? AND ts < ?""",
                    [*site.day_window(DAY)],
                )
                conn.execute(
                    f"""INSERT INTO raw.camera_health SELECT window_start - {shift}, camera_id,
                    frames_read, frames_processed, frames_dropped, decode_errors, latency_ms_mean,
                    latency_ms_p95, batch_id || ':minus{k}'
                    FROM raw.camera_health WHERE window_start >= ? AND window_start < ?""",
                    [*site.day_window(DAY)],
                )
            # DAY itself is the day built next: the history is the H days before it
        with connect(url, site) as wh:
            wh.ensure_index_timeline(first - timedelta(days=1), DAY + timedelta(days=1))
        build_marts(url, first, DAY, site=site)  # the history, built
        seconds, _ = model_seconds(url, site, DAY, DAY + timedelta(days=1))  # the next day's run
        with duckdb.connect(duckdb_path(url), read_only=True) as conn:
            raw_rows = conn.execute("SELECT COUNT(*) FROM raw.detections").fetchone()[0]
        out.append({"history_days": h, "raw_rows": raw_rows, "next_day_run": seconds})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer cameras and rows (a smoke run)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true", help="no DuckDB day and no history")
    parser.add_argument("--pg-cameras", type=int, default=4, help="PostgreSQL day: cameras (default 4)")
    parser.add_argument("--pg-fps", type=float, default=5.0, help="PostgreSQL day: frames per second (5)")
    parser.add_argument("--rounds", type=int, default=3, help="PostgreSQL rounds, floor/run alternating (3)")
    args = parser.parse_args()
    duck_cams, duck_fps = (2, 2.0) if args.quick else (10, 5.0)
    pg_cams, pg_fps = (1, 1.0) if args.quick else (args.pg_cameras, args.pg_fps)
    hist_cams, hist_fps = (1, 1.0) if args.quick else (1, 2.0)
    with tempfile.TemporaryDirectory(prefix="bench_transforms_") as tmp:
        workdir = Path(tmp)
        results = [] if args.skip_duckdb else [one_day(duck_cams, duck_fps, workdir)]
        if not args.skip_postgres:
            results.append(postgres_rounds(pg_cams, pg_fps, 1 if args.quick else args.rounds))
        print("\n## One day: all marts through SQLMesh vs the hand-written sessionization floor")
        print(
            "| engine | cameras | detections | floor query s | SQLMesh run s (all marts, 2 days) "
            "| run / floor | incl. load + plan s | sessions (SQLMesh / floor) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            ratio = f"{r['run'] / r['floor']:.1f}x"
            if "ratio" in r:  # PostgreSQL: median of the rounds' ratios (min-max)
                lo, hi = r["ratio_range"]
                ratio = f"{r['ratio']:.2f}x ({lo:.2f}-{hi:.2f}, {r['rounds']} rounds)"
            print(
                f"| {r['engine']} | {r['cameras']} | {r['rows']:,} | {r['floor']:.1f} | {r['run']:.1f} | "
                f"{ratio} | {r['total']:.1f} | {r['sessions']} / {r['floor_sessions']} |"
            )
        if args.skip_duckdb:
            return 0
        hist = history([1, 7, 30], hist_cams, hist_fps, workdir)
        base = hist[0]["next_day_run"]
        print("\n## Next day's incremental run vs history (DuckDB)")
        print("| history days | raw detections | next-day run s | vs 1 day |")
        print("|---|---|---|---|")
        for h in hist:
            print(
                f"| {h['history_days']} | {h['raw_rows']:,} | {h['next_day_run']:.1f} | "
                f"{h['next_day_run'] / base:.2f}x |"
            )
        ratio = hist[-1]["next_day_run"] / base
        verdict = "OK" if ratio <= 1.2 else "OVER TARGET"
        print(f"\nday-30 / day-1 cost: {ratio:.2f}x (target <= 1.2x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
