"""Simulator throughput: detection rows generated per second, against baselines measured in the same run.

Baselines, on the very frame the simulator produced:
- copy: materialising a full copy of it in polars (gather of every column) — the floor for any producer
  that hands out a fresh frame of that size;
- ipc: one Arrow IPC round trip of it in memory (what handing it to another process would cost).

Usage: .venv/bin/python bench/simulator.py [--days 1] [--fps 5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import sys
import time as clock
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.simulate import simulate  # noqa: E402
from ingestion.site import load_site  # noqa: E402


def best_of(repeat: int, fn, timer=clock.perf_counter) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = timer()
        out = fn()
        best = min(best, timer() - t0)
    return best, out


def baselines(df: pl.DataFrame, repeat: int) -> tuple[float, float]:
    """Seconds to materialise a full copy of `df`, and to round-trip it through Arrow IPC in memory."""
    idx = pl.Series(np.arange(df.height, dtype=np.uint32))

    def ipc_round_trip() -> pl.DataFrame:
        buf = io.BytesIO()
        df.write_ipc(buf)
        buf.seek(0)
        return pl.read_ipc(buf)

    copy_s, _ = best_of(repeat, lambda: df.select(pl.all().gather(idx)))
    ipc_s, _ = best_of(repeat, ipc_round_trip)
    return copy_s, ipc_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    site = load_site()
    simulate(site, start=date(2025, 1, 15), cameras=[site.camera_ids[0]], window=None, fps=1.0)  # warm caches

    print(
        f"site: {len(site.cameras)} cameras x {args.days} day(s) at {args.fps:g} fps, best of {args.repeat}"
    )
    header = (
        f"{'noise':<10}{'rows':>12}{'simulate s':>12}{'rows/s':>14}{'copy s':>9}{'ipc s':>9}"
        f"{'vs copy':>9}{'vs ipc':>8}{'rows/cpu-s':>13}"
    )
    print(header)
    print("-" * len(header))
    for noise in ("none", "realistic"):
        seconds, df = best_of(
            args.repeat,
            lambda noise=noise: (
                simulate(site, start=date(2025, 1, 15), days=args.days, fps=args.fps, noise=noise).detections
            ),
        )
        copy_s, ipc_s = baselines(df, args.repeat)
        # CPU seconds of this process (all threads): what the rate would be without other processes around.
        cpu_s, _ = best_of(
            args.repeat,
            lambda noise=noise: simulate(
                site, start=date(2025, 1, 15), days=args.days, fps=args.fps, noise=noise
            ),
            clock.process_time,
        )
        print(
            f"{noise:<10}{df.height:>12,}{seconds:>12.2f}{df.height / seconds:>14,.0f}"
            f"{copy_s:>9.2f}{ipc_s:>9.2f}{seconds / copy_s:>8.1f}x{seconds / ipc_s:>7.1f}x"
            f"{df.height / cpu_s:>13,.0f}"
        )
        if noise == "none":
            per_camera_day = df.height / (len(site.cameras) * args.days) * 5.0 / args.fps
            print(
                f"{'':<10}rows per camera-day at 5 fps: {per_camera_day:,.0f}; "
                f"10 cameras x 1 day: {10 * per_camera_day / 1e6:.1f}M rows"
            )
    print(
        "vs copy / vs ipc: simulate time as a multiple of the baseline on the same frame (lower is better);"
    )
    print("rows/cpu-s: rows per CPU second of this process, robust to other load on the machine")


if __name__ == "__main__":
    main()
