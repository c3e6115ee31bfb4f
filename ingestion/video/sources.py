"""Where frames come from: a video file, a recorded segment (a file with a known start time) or a live
RTSP/HTTP/device stream. Every frame carries its real capture time: file start + presentation time for
files, the wall clock for live streams. Frames are sampled down to a target rate (`vid_stride` style, but
by time, so 25, 29.97 and 30 fps sources all come out at the same 5 fps).

Sources report what they read, dropped and failed to decode into a `HealthRecorder`; a source that cannot
go on raises `VideoSourceError` naming itself, after yielding every frame it could decode.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from ingestion.redact import redact_url
from ingestion.video.health import HealthRecorder

log = logging.getLogger(__name__)


class VideoSourceError(RuntimeError):
    """A source failed: the message names the source, what went wrong and what to do about it."""

    def __init__(self, source: str, problem: str, fix: str):
        self.source, self.problem, self.fix = source, problem, fix
        super().__init__(f"{source}: {problem}. {fix[:1].upper()}{fix[1:]}")


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (0-based, counting every decoded frame, sampled or not)
    ts: datetime  # capture time, UTC
    image: np.ndarray  # BGR


class VideoFileSource:
    """A video file whose first frame was captured at `start_time` (aware datetime)."""

    # Decoded this many frames short of the container's frame count => the file ended early. The count is
    # an estimate (duration x fps) in some containers, hence a small tolerance.
    FRAME_COUNT_TOLERANCE = 2

    def __init__(self, path: str | Path, start_time: datetime, *, target_fps: float | None = 5.0):
        if start_time.tzinfo is None:
            raise ValueError(f"{path}: start_time must be timezone-aware (got {start_time.isoformat()})")
        self.path = Path(path)
        self.start_time = start_time.astimezone(UTC)
        self.target_fps = target_fps
        self.label = str(self.path)

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise VideoSourceError(
                self.label, "video file not found", "check the path (and that the recording finished copying)"
            )
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise VideoSourceError(
                self.label,
                "cannot be opened as a video: it is corrupt, truncated (an .mp4 cut off before "
                "the recorder wrote its index cannot be read at all) or not a video",
                "re-copy or re-record the segment, or convert it with ffmpeg; other files are not affected",
            )
        return cap

    def frames(self, health: HealthRecorder) -> Iterator[Frame]:
        cap = self._open()
        try:
            yield from self._read(cap, health)
        finally:
            cap.release()

    def _read(self, cap: cv2.VideoCapture, health: HealthRecorder) -> Iterator[Frame]:
        native_fps = cap.get(cv2.CAP_PROP_FPS)
        if not (0 < native_fps < 1000):
            raise VideoSourceError(
                self.label,
                f"the container reports no usable frame rate ({native_fps})",
                "re-mux the file with ffmpeg so it carries its frame rate",
            )
        expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frame_s = 1.0 / native_fps
        step_s = frame_s if not self.target_fps or self.target_fps >= native_fps else 1.0 / self.target_fps
        next_due = 0.0
        read = 0
        prev_offset = None
        offset = 0.0
        while cap.grab():
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            offset = pos_ms / 1000.0 if pos_ms > 0 or read == 0 else read * frame_s
            read += 1
            if prev_offset is not None and offset - prev_offset > 1.5 * frame_s:
                # Presentation times jumped: the decoder skipped frames it could not decode.
                lost = round((offset - prev_offset) / frame_s) - 1
                health.decode_error(self.start_time + timedelta(seconds=prev_offset + frame_s), lost)
            prev_offset = offset
            ts = self.start_time + timedelta(seconds=offset)
            health.read(ts)
            if offset + 1e-6 < next_due:
                continue
            next_due += step_s * max(1, math.floor((offset + 1e-6 - next_due) / step_s) + 1)
            ok, image = cap.retrieve()
            if not ok or image is None:
                health.decode_error(ts)
                continue
            yield Frame(read - 1, ts, image)
        if expected > 0 and read < expected - self.FRAME_COUNT_TOLERANCE:
            end_ts = self.start_time + timedelta(seconds=offset + frame_s if read else 0.0)
            health.decode_error(end_ts, expected - read)
            raise VideoSourceError(
                self.label,
                f"decoding stopped after {read} of {expected} frames ({offset:.1f} s in): the file "
                "is truncated or corrupt",
                "the frames before that point were landed; repair or re-record "
                "the file and ingest it again (already landed batches are skipped)",
            )


class LiveStreamSource:
    """An RTSP/HTTP URL or a device index ("0") read through OpenCV, stamped with the wall clock.

    Reconnects on failure with exponential backoff (`backoff_initial` doubling up to `backoff_max`); gives
    up with `VideoSourceError` after `max_retries` consecutive failed attempts. Stops after `duration_s`
    seconds, `max_frames` processed frames, or when `stop` is set."""

    def __init__(
        self,
        url: str,
        *,
        target_fps: float = 5.0,
        max_retries: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        open_timeout_s: float = 10.0,
        duration_s: float | None = None,
        max_frames: int | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.label = redact_url(url)
        self.target_fps = target_fps
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout_s = open_timeout_s
        self.duration_s = duration_s
        self.max_frames = max_frames
        self.stop = stop or threading.Event()
        self.clock = clock
        self.sleep = sleep
        self.connections = 0  # successful opens, for health reporting and tests
        self.start_time = datetime.fromtimestamp(clock(), tz=UTC)

    def _open(self) -> cv2.VideoCapture | None:
        if self.url.isdigit():
            cap = cv2.VideoCapture(int(self.url))
        else:
            ms = int(self.open_timeout_s * 1000)
            cap = cv2.VideoCapture(
                self.url,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms],
            )
        if cap.isOpened():
            self.connections += 1
            return cap
        cap.release()
        return None

    def frames(self, health: HealthRecorder) -> Iterator[Frame]:
        step_s = 1.0 / self.target_fps
        started = self.clock()
        next_due = started
        index = processed = failures = 0
        backoff = self.backoff_initial
        cap = None
        try:
            while not self.stop.is_set():
                if self.duration_s is not None and self.clock() - started >= self.duration_s:
                    return
                if cap is None:
                    cap = self._open()
                    if cap is None:
                        failures += 1
                        self._wait_or_give_up(failures, backoff, started, "cannot connect")
                        backoff = min(backoff * 2, self.backoff_max)
                        continue
                ok = cap.grab()
                now = self.clock()
                ts = datetime.fromtimestamp(now, tz=UTC)
                if not ok:
                    # The stream broke (or ended): count it and reconnect, backing off like a failed connect.
                    health.decode_error(ts)
                    cap.release()
                    cap = None
                    failures += 1
                    self._wait_or_give_up(failures, backoff, started, "stream interrupted")
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                failures, backoff = 0, self.backoff_initial
                health.read(ts)
                index += 1
                if now < next_due - step_s / 2:  # half a step of slack absorbs network jitter
                    continue
                missed = max(0, math.floor((now - next_due) / step_s))
                if missed:
                    health.dropped(ts, missed)  # processing fell behind the stream
                next_due += step_s * (missed + 1)
                ok, image = cap.retrieve()
                if not ok or image is None:
                    health.decode_error(ts)
                    continue
                yield Frame(index - 1, ts, image)
                processed += 1
                if self.max_frames is not None and processed >= self.max_frames:
                    return
        finally:
            if cap is not None:
                cap.release()

    def _wait_or_give_up(self, failures: int, backoff: float, started: float, what: str) -> None:
        if failures > self.max_retries:
            raise VideoSourceError(
                self.label,
                f"stream unreachable: {failures} consecutive attempts failed over "
                f"{self.clock() - started:.1f} s ({what})",
                "check the URL, that the camera is streaming and "
                "reachable from here, and its credentials (taken from the environment)",
            )
        log.warning("%s: %s (attempt %d), retrying in %.1f s", self.label, what, failures, backoff)
        self.sleep(backoff)
