"""Recorded segments: a folder per camera of video files, each named by its local start time.

DIR/CAM01/2025-01-15T08-00-00.mp4        start time from the name, in the site's timezone
DIR/CAM01/clip-0001.mp4 + clip-0001.json  or from a sidecar: {"start_time": "2025-01-15T08:00:00+07:00"}
                                          (a sidecar time without an offset is site-local)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingestion.site import Site

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".ts")
_NAME_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})$")


class SegmentError(ValueError):
    """A segment folder or file is laid out wrongly; the message names it and the fix."""


@dataclass(frozen=True)
class Segment:
    camera_id: str
    path: Path
    start_time: datetime  # UTC

    @property
    def key(self) -> str:
        """Stable identity of the segment for batch ids: camera and UTC start."""
        return f"{self.camera_id}:{self.start_time:%Y-%m-%dT%H-%M-%SZ}"


def segment_file_name(start_time: datetime, site: Site, suffix: str = ".mp4") -> str:
    """The file name a segment starting at `start_time` gets (site-local time, as discovery expects)."""
    return f"{start_time.astimezone(site.tz):%Y-%m-%dT%H-%M-%S}{suffix}"


def segment_start_time(path: Path, site: Site) -> datetime:
    """Start time of a segment file from its sidecar (preferred) or its name; raises SegmentError."""
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            doc = json.loads(sidecar.read_text())
            raw = doc["start_time"]
            start = datetime.fromisoformat(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise SegmentError(
                f'{sidecar}: needs a JSON object with an ISO 8601 "start_time", e.g. '
                f'{{"start_time": "2025-01-15T08:00:00+07:00"}} ({exc})'
            ) from exc
        if start.tzinfo is None:
            start = start.replace(tzinfo=site.tz)
        return start.astimezone(UTC)
    m = _NAME_TIME.match(path.stem)
    if not m:
        raise SegmentError(
            f"{path}: cannot tell when this segment starts: name it like 2025-01-15T08-00-00"
            f"{path.suffix} (site-local time, {site.timezone}) or add a sidecar "
            f'{sidecar.name} with {{"start_time": "..."}}'
        )
    day, hh, mm, ss = m.groups()
    try:
        local = datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}")
    except ValueError as exc:
        raise SegmentError(f"{path}: the start time in the name is not a valid date/time ({exc})") from exc
    return local.replace(tzinfo=site.tz).astimezone(UTC)


def discover_segments(root: str | Path, site: Site, cameras: list[str] | None = None) -> list[Segment]:
    """All segments under root/<camera id>/, sorted by camera and start time."""
    root = Path(root)
    if not root.is_dir():
        raise SegmentError(
            f"{root}: not a folder; expected a folder with one sub-folder per camera "
            f"(e.g. {root}/CAM01/2025-01-15T08-00-00.mp4)"
        )
    known = set(site.camera_ids)
    wanted = set(cameras) if cameras else None
    if wanted and wanted - known:
        raise SegmentError(
            f"unknown camera(s) {sorted(wanted - known)}; the site {site.path} has "
            f"{', '.join(site.camera_ids)}"
        )
    segments = []
    for cam_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        videos = [p for p in sorted(cam_dir.iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
        if cam_dir.name not in known:
            if not videos:
                continue  # not a camera folder (e.g. the renderer's ground_truth/): nothing to ingest
            raise SegmentError(
                f"{cam_dir}: holds videos but is not a camera of the site {site.path} "
                f"({', '.join(site.camera_ids)}); rename it or move it out of {root}"
            )
        if wanted and cam_dir.name not in wanted:
            continue
        segments += [Segment(cam_dir.name, path, segment_start_time(path, site)) for path in videos]
    segments.sort(key=lambda s: (s.camera_id, s.start_time))
    return segments
