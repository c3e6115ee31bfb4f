"""`sightline simulate`: simulate camera-days, land them in the warehouse, write the ground truth."""

from __future__ import annotations

import argparse
from datetime import date, time, timedelta
from pathlib import Path

from orchestration.cli.options import add_site_option, add_warehouse_option

NOISE_CHOICES = ("none", "realistic")  # ingestion.simulate.NOISE_PRESETS, without importing it at startup


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate camera-days, land them and write ground-truth sessions",
        description="Simulate workers in front of the site's cameras, land every camera-day in the warehouse "
        "(replacing that partition) and write the ground-truth sessions to Parquet.",
    )
    p.add_argument("--days", type=_positive_int, default=1, help="number of days (default 1)")
    p.add_argument(
        "--start", type=_day, default=date(2025, 1, 15), help="first day, YYYY-MM-DD (default 2025-01-15)"
    )
    p.add_argument(
        "--cameras", type=_camera_list, default=None, help="comma-separated camera ids (default all)"
    )
    p.add_argument(
        "--noise", choices=NOISE_CHOICES, default="realistic", help="noise preset (default realistic)"
    )
    p.add_argument("--fps", type=float, default=5.0, help="detection frames per second (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--window", type=parse_window, default=None, help="local time window each day, HH:MM-HH:MM"
    )
    p.add_argument(
        "--workers", type=_positive_int, default=None, help="people per camera (default from the zones)"
    )
    add_warehouse_option(p)
    add_site_option(p)
    p.add_argument(
        "--truth-out",
        type=Path,
        default=None,
        help="ground-truth sessions Parquet (default data/truth/sessions_<start>_<days>d.parquet)",
    )
    p.add_argument(
        "--render-video",
        type=Path,
        default=None,
        metavar="DIR",
        help="also render the clean scenes to video segments under DIR (see ingestion/simulate/render.py)",
    )
    p.set_defaults(func=run)


def parse_window(text: str) -> tuple[time, time]:
    """'08:00-09:00' -> (time(8), time(9)); the end may be 00:00 for midnight."""
    try:
        a, b = text.split("-")
        start, end = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad window {text!r}: write it as HH:MM-HH:MM, e.g. 08:00-09:00"
        ) from None
    if not (start < end or end == time(0)):
        raise argparse.ArgumentTypeError(
            f"bad window {text!r}: the end must come after the start on the same day"
        )
    return start, end


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad date {text!r}: write it as YYYY-MM-DD") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _camera_list(text: str) -> list[str]:
    ids = [c.strip() for c in text.split(",") if c.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("give at least one camera id, e.g. CAM01,CAM02")
    return ids


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ingestion.simulate import combine_sessions, iter_camera_days, resolve_cameras
    from ingestion.site import load_site
    from ingestion.warehouse import connect
    from ingestion.warehouse.base import SIMULATOR_SOURCE

    site = load_site(args.site)
    cameras = resolve_cameras(site, args.cameras)
    days = [args.start + timedelta(days=d) for d in range(args.days)]
    truth_out = (
        args.truth_out or Path("data/truth") / f"sessions_{args.start.isoformat()}_{args.days}d.parquet"
    )

    kept, totals = [], {c: {"days": 0, "landed": 0, "rejected": 0, "health_rows": 0} for c in cameras}
    with connect(args.warehouse, site) as wh:
        wh.require_setup()
        wh.load_reference()
        wh.ensure_index_timeline(days[0], days[-1])  # ref.index_timeline must cover the simulated days
        parts = iter_camera_days(
            site,
            args.start,
            args.days,
            cameras,
            fps=args.fps,
            noise=args.noise,
            seed=args.seed,
            window=args.window,
            workers_per_camera=args.workers,
            progress=True,
        )
        for part in parts:
            result = wh.replace_partition(
                part.camera_id,
                part.day,
                part.detections,
                source=SIMULATOR_SOURCE,
                camera_health=part.camera_health,
            )
            # Keep only the ground truth of a landed camera-day, not its rows.
            kept.append(
                dataclasses.replace(
                    part, detections=part.detections.clear(), camera_health=part.camera_health.clear()
                )
            )
            t = totals[part.camera_id]
            t["days"] += 1
            t["landed"] += result.landed
            t["rejected"] += result.rejected
            t["health_rows"] += result.health_rows

    truth = combine_sessions(kept, site)
    truth_out.parent.mkdir(parents=True, exist_ok=True)
    truth.write_parquet(truth_out)
    per_camera = dict(truth.group_by("camera_id").len().iter_rows())
    print(
        f"{'camera':<10}{'days':>6}{'detections':>14}{'rejected':>10}{'health rows':>13}{'true sessions':>15}"
    )
    for camera_id, t in totals.items():
        print(
            f"{camera_id:<10}{t['days']:>6}{t['landed']:>14,}{t['rejected']:>10,}{t['health_rows']:>13,}"
            f"{per_camera.get(camera_id, 0):>15,}"
        )
    print(f"ground-truth sessions ({truth.height:,}): {truth_out}")

    if args.render_video is not None:
        from ingestion.simulate.render import render_video  # OpenCV drawing: only when asked

        for day in days:
            out = args.render_video if len(days) == 1 else args.render_video / day.isoformat()
            rendered = render_video(
                site,
                out,
                day=day,
                window=args.window,
                cameras=cameras,
                fps=args.fps,
                seed=args.seed,
                progress=True,
            )
            print(f"rendered {len(rendered.segments)} video segments of {day} under {out}")
    return 0
