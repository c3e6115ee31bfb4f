"""Detection logs -> raw.detections: MOT Challenge text, JSON lines and Parquet.

MOT Challenge text is the interchange format trackers emit. Two variants exist and are told apart
automatically (or with `mot_variant`):
- results (tracker output, MOT15/16/17/20): `frame, id, left, top, width, height[, conf[, x, y[, z]]]`,
  6 to 10 fields — the 8th field is a class id when a tracker writes one, -1 (unknown, which MOT uses for
  people) otherwise -> class 0. A conf of -1 (many trackers write it), any value outside 0..1, or no
  conf field at all means "no calibrated score": the row lands with confidence NULL and the summary
  counts it (`unscored`);
- ground truth (MOT16/17 gt.txt): `frame, id, left, top, width, height, consider, class, visibility` —
  only rows with consider = 1 and class = 1 (pedestrian) are people to evaluate; they land as class 0
  with confidence 1, the others are counted as `ignored` (reported, not dead letters: they are valid
  annotations of other things).
Frame 1 is at `start_time`; ts = start_time + (frame - 1) / fps. MOT pixels are 1-based, ours 0-based.
A line that cannot be a detection (too few fields, not a number, NaN/inf, frame outside 1..2^31-1, id
negative or beyond 64 bits, a box coordinate beyond +-1e6 px or a size <= 0) is a dead letter naming its
line number; the rest of the file still lands.

JSON lines and Parquet carry the columns of raw.detections (`ts` required); `camera_id` defaults to the
given camera, `frame_idx` to the row number, `class_id` to 0, `confidence` to 1, `zone_id` is computed
from the site's zones when absent, and `motion_score` is taken from the file when present, else 0 (a log
has no pixels to measure motion from).

Timestamps: a JSONL `ts` is ISO-8601, parsed line by line (`ingestion.timestamps`): with Z or an offset
it is that instant, without one it is the site's local time (site.yaml `site.timezone`), never silently
UTC; a line whose `ts` is no valid time is a dead letter naming the line and the value. Parquet: a
timezone-aware column is taken as is, a naive one (or strings without an offset) as site-local time.

Parsing is vectorised with polars; malformed lines become dead letters naming the line number. Rows
land through `append_batch` in chunks whose batch ids are derived from the file's content hash and the
chunk index, so ingesting the same file again is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from tqdm import tqdm

from ingestion.schema import DETECTION_SCHEMA, UTC_TS
from ingestion.site import Site
from ingestion.timestamps import parse_iso_datetimes
from ingestion.warehouse.base import Warehouse
from ingestion.zones import assign_zones

log = logging.getLogger(__name__)

FORMATS = ("mot", "jsonl", "parquet")
SOURCE = "detection_log"
_MOT_FIELDS = ("frame", "id", "left", "top", "width", "height", "f7", "f8", "f9", "f10")
_MOT_GT_PEDESTRIAN = 1
_MOT_MAX_FRAME = 2**31 - 1  # every MOT tool stores frames as int32
_MOT_MAX_ID = 2**62  # well inside int64 after the float parse
_MOT_MAX_PX = 1e6  # no camera is a million pixels wide: anything beyond is a corrupt line


class DetectionLogError(ValueError):
    """The log cannot be read at all (wrong format, missing option); nothing was landed."""


@dataclass(frozen=True)
class ParsedLog:
    detections: pl.DataFrame  # DETECTION_SCHEMA, batch_id null
    dead_letters: pl.DataFrame  # payload (the line as read), reason (names the line number)
    ignored: int = 0  # MOT gt rows that are not people to evaluate
    variant: str = ""
    unscored: int = 0  # rows landing with confidence NULL (MOT conf -1 / outside 0..1 / absent)


@dataclass(frozen=True)
class IngestSummary:
    path: str
    format: str
    rows_parsed: int
    malformed_lines: int
    ignored: int
    batches: int
    batches_skipped: int
    landed: int
    rejected: int  # rows rejected by the landing layer's validation (plus malformed lines)
    unscored: int = 0  # rows landed with confidence NULL (no calibrated score in the source)


def _dead_letters(frame: pl.DataFrame, reason: pl.Expr, payload: str = "line") -> pl.DataFrame:
    return frame.select(
        pl.col(payload).alias("payload"), pl.format("line {}: {}", pl.col("line_no"), reason).alias("reason")
    )


def _lines(data: bytes) -> pl.DataFrame:
    """The file's lines with 1-based line numbers, blank lines dropped (str.split is one C call)."""
    text = data.decode("utf-8", errors="replace")
    frame = pl.DataFrame({"line": pl.Series(text.split("\n"), dtype=pl.String)}).with_row_index(
        "line_no", offset=1
    )
    return frame.with_columns(pl.col("line").str.strip_chars()).filter(pl.col("line") != "")


def parse_mot(
    data: bytes,
    *,
    camera_id: str,
    start_time: datetime,
    fps: float,
    variant: str = "auto",
) -> ParsedLog:
    if start_time.tzinfo is None:
        raise DetectionLogError("start time must carry a UTC offset, e.g. 2025-01-15T08:00:00+07:00")
    if fps <= 0:
        raise DetectionLogError(f"fps must be positive, got {fps}")
    lines = _lines(data)
    split = pl.col("line").str.split(",")
    numbers = [
        split.list.get(i, null_on_oob=True).str.strip_chars().cast(pl.Float64, strict=False).alias(name)
        for i, name in enumerate(_MOT_FIELDS)
    ]
    raw_fields = [
        split.list.get(i, null_on_oob=True).alias(f"raw_{name}") for i, name in enumerate(_MOT_FIELDS)
    ]
    table = lines.with_columns(split.list.len().alias("n_fields"), *numbers, *raw_fields)

    problems = [
        pl.when(pl.col("n_fields") < 6).then(
            pl.format(
                "expected at least 6 comma-separated fields (frame,id,left,top,width,height,...), got {}",
                pl.col("n_fields"),
            )
        )
    ]
    for i, name in enumerate(_MOT_FIELDS[:9]):
        problems.append(
            pl.when((pl.col("n_fields") > i) & pl.col(name).is_null()).then(
                pl.format(f"field {i + 1} ({name}) is not a number: '{{}}'", pl.col(f"raw_{name}"))
            )
        )
    for name in ("frame", "id"):
        problems.append(
            pl.when(pl.col(name).is_not_null() & (pl.col(name) != pl.col(name).round())).then(
                pl.lit(f"{name} must be a whole number")
            )
        )
    for name in ("frame", "id", "left", "top", "width", "height"):
        problems.append(pl.when(~pl.col(name).is_finite()).then(pl.lit(f"{name} is NaN or infinite")))
    problems += [
        pl.when((pl.col("frame") < 1) | (pl.col("frame") > _MOT_MAX_FRAME)).then(
            pl.format(f"frame {{}} outside 1..{_MOT_MAX_FRAME} (MOT frames start at 1)", pl.col("raw_frame"))
        ),
        pl.when(pl.col("id") < 0).then(
            pl.format("id {} is negative (a MOT det.txt has no track ids: track it first)", pl.col("raw_id"))
        ),
        pl.when(pl.col("id") > _MOT_MAX_ID).then(
            pl.format("id {} is too large for a track id", pl.col("raw_id"))
        ),
    ]
    for name in ("left", "top", "width", "height"):
        problems.append(
            pl.when(pl.col(name).abs() > _MOT_MAX_PX).then(
                pl.format(f"{name} {{}} is beyond +-{_MOT_MAX_PX:.0e} pixels", pl.col(f"raw_{name}"))
            )
        )
    for name in ("width", "height"):
        problems.append(pl.when(pl.col(name) <= 0).then(pl.lit(f"{name} must be > 0")))
    table = table.with_columns(pl.concat_str(problems, separator="; ", ignore_nulls=True).alias("problem"))
    bad = table.filter(pl.col("problem") != "")
    good = table.filter(pl.col("problem") == "")

    if variant == "auto":
        variant = _detect_mot_variant(good)
    if variant not in ("gt", "results"):
        raise DetectionLogError(f"unknown MOT variant {variant!r}: use auto, gt or results")
    ignored = 0
    if variant == "gt":
        keep = (pl.col("f7") == 1) & (pl.col("f8") == _MOT_GT_PEDESTRIAN)
        ignored = good.filter(~keep).height
        good = good.filter(keep).with_columns(pl.lit(1.0).alias("conf"), pl.lit(0).alias("cls"))
    else:
        # -1 (or anything outside 0..1, NaN, or no field) is "no calibrated score": NULL, never a guess.
        scored = pl.col("f7").is_between(0, 1) & pl.col("f7").is_not_nan()
        good = good.with_columns(
            pl.when(scored).then(pl.col("f7")).alias("conf"),
            pl.when(pl.col("f8").is_null() | (pl.col("f8") < 0)).then(0).otherwise(pl.col("f8")).alias("cls"),
        )
    frame_us = 1e6 / fps
    detections = good.select(
        (
            pl.lit(start_time.astimezone(UTC), dtype=UTC_TS)
            + pl.duration(microseconds=((pl.col("frame") - 1) * frame_us).round().cast(pl.Int64))
        ).alias("ts"),
        pl.lit(camera_id).alias("camera_id"),
        pl.col("frame").cast(pl.Int64).alias("frame_idx"),
        pl.col("id").cast(pl.Int64).alias("track_id"),
        pl.col("cls").cast(pl.Int16).alias("class_id"),
        pl.col("conf").cast(pl.Float32).alias("confidence"),
        (pl.col("left") - 1).cast(pl.Float32).alias("x"),
        (pl.col("top") - 1).cast(pl.Float32).alias("y"),
        pl.col("width").cast(pl.Float32).alias("w"),
        pl.col("height").cast(pl.Float32).alias("h"),
        pl.lit(None, dtype=pl.String).alias("zone_id"),
        pl.lit(0.0, dtype=pl.Float32).alias("motion_score"),
        pl.lit(None, dtype=pl.String).alias("worker_id"),
        pl.lit(None, dtype=pl.String).alias("batch_id"),
    )
    unscored = detections["confidence"].null_count()
    return ParsedLog(detections, _dead_letters(bad, pl.col("problem")), ignored, variant, unscored)


def _detect_mot_variant(rows: pl.DataFrame) -> str:
    """gt.txt has 9 fields with a 0/1 `consider` flag and MOT classes 1..12; anything else is results."""
    if rows.height == 0:
        return "results"
    looks_gt = rows.select(
        (pl.col("n_fields") == 9).all()
        & pl.col("f7").is_in([0.0, 1.0]).all()
        & (pl.col("f8") == pl.col("f8").round()).all()
        & pl.col("f8").is_between(1, 12).all()
    ).item()
    return "gt" if looks_gt else "results"


def _from_columns(frame: pl.DataFrame, camera_id: str, timezone: str) -> pl.DataFrame:
    """Fill the optional columns of a JSONL/Parquet frame and order it as DETECTION_SCHEMA."""
    if "ts" not in frame.columns:
        raise DetectionLogError(
            f"the log has no 'ts' column (columns: {frame.columns}); every row needs its "
            "frame time as ISO-8601 (with a UTC offset, or site-local time without one)"
        )
    defaults = {
        "camera_id": pl.lit(camera_id),
        "frame_idx": pl.int_range(pl.len()),
        "class_id": pl.lit(0),
        "confidence": pl.lit(1.0),
        "zone_id": pl.lit(None, dtype=pl.String),
        "motion_score": pl.lit(0.0),
        "worker_id": pl.lit(None, dtype=pl.String),
        "batch_id": pl.lit(None, dtype=pl.String),
    }
    ts = pl.col("ts")
    ts_type = frame.schema["ts"]
    if ts_type == pl.String:  # each value parsed on its own; an unparseable one is null (landing refuses it)
        ts = pl.lit(parse_iso_datetimes(frame["ts"], timezone)["ts"])
    elif isinstance(ts_type, pl.Datetime) and ts_type.time_zone is None:  # naive: site-local, not UTC
        local = ts.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        ts = local.dt.convert_time_zone("UTC")
    exprs = []
    for name, dtype in DETECTION_SCHEMA.items():
        if name == "ts":
            exprs.append(ts.alias("ts"))
        elif name in frame.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        elif name in defaults:
            exprs.append(defaults[name].cast(dtype).alias(name))
        else:
            raise DetectionLogError(
                f"the log has no {name!r} column; add it (see raw.detections in DESIGN.md)"
            )
    out = frame.select(exprs)
    return out.with_columns(pl.col("camera_id").fill_null(camera_id))


def parse_jsonl(data: bytes, *, camera_id: str, timezone: str) -> ParsedLog:
    """`timezone`: the site's, for timestamps written without a UTC offset."""
    lines = _lines(data)
    decoded, bad = _decode_json_lines(lines)
    if decoded.height and "ts" in decoded.columns:  # each line's ts on its own (no format guessed)
        times = parse_iso_datetimes(decoded["ts"], timezone)
        decoded = decoded.with_columns(ts=times["ts"], _problem=times["problem"])
        bad_ts = decoded.filter(pl.col("_problem").is_not_null())
        if bad_ts.height:
            bad = pl.concat([bad, _dead_letters(bad_ts, pl.format("ts {}", pl.col("_problem")))])
        decoded = decoded.filter(pl.col("_problem").is_null()).drop("_problem")
    detections = (
        _from_columns(decoded.drop("line_no", "line"), camera_id, timezone)
        if decoded.height
        else (pl.DataFrame(schema=DETECTION_SCHEMA))
    )
    return ParsedLog(detections, bad, 0, "")


def _decode_json_lines(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode all lines at once; where a chunk fails, bisect it to find the malformed lines (vectorised
    decodes of halves, so a few bad lines cost O(bad x log n) decodes, not a Python loop over rows)."""
    fields = list(DETECTION_SCHEMA.names())
    dtype = pl.Struct({name: (pl.String if name == "ts" else dt) for name, dt in DETECTION_SCHEMA.items()})
    good_parts, bad_parts = [], []
    pending = [lines]
    while pending:
        part = pending.pop()
        if part.height == 0:
            continue
        try:
            decoded = part.with_columns(pl.col("line").str.json_decode(dtype).alias("row"))
            objects = decoded.filter(pl.col("line").str.starts_with("{"))
            if objects.height != decoded.height:
                raise pl.exceptions.ComputeError("not an object")
            good_parts.append(objects.unnest("row").select("line_no", "line", *fields))
        except pl.exceptions.PolarsError as exc:
            if part.height == 1:
                bad_parts.append(
                    _dead_letters(
                        part,
                        pl.lit(f"not a JSON object of raw.detections fields ({exc})".splitlines()[0][:300]),
                    )
                )
            else:
                half = part.height // 2
                pending += [part.slice(0, half), part.slice(half)]
    # Keys present in the file decide which columns exist; absent ones are filled by defaults.
    present = _present_keys(lines)
    good = pl.concat(good_parts) if good_parts else pl.DataFrame()
    if good.height:
        good = good.sort("line_no").select("line_no", "line", *[f for f in fields if f in present])
    bad = (
        pl.concat(bad_parts)
        if bad_parts
        else pl.DataFrame(schema={"payload": pl.String, "reason": pl.String})
    )
    return good, bad.sort("reason")


def _present_keys(lines: pl.DataFrame) -> set[str]:
    """Field names that appear in at least one line (so a missing field gets its documented default)."""
    names = list(DETECTION_SCHEMA.names())
    found = lines.select([pl.col("line").str.contains(f'"{n}"\\s*:').any().alias(n) for n in names]).row(0)
    return {n for n, hit in zip(names, found, strict=True) if hit}


def parse_parquet(path: Path, *, camera_id: str, timezone: str) -> ParsedLog:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader error means "not a readable Parquet file"
        raise DetectionLogError(f"{path} is not a readable Parquet file ({exc})") from exc
    return ParsedLog(
        _from_columns(frame, camera_id, timezone),
        pl.DataFrame(schema={"payload": pl.String, "reason": pl.String}),
    )


def with_zones(detections: pl.DataFrame, site: Site) -> pl.DataFrame:
    """Compute zone_id per camera for rows that have none (vectorised point-in-polygon)."""
    parts = []
    for (cam,), part in detections.group_by("camera_id", maintain_order=True):
        zones = site.zones_for(cam) if cam in site.camera_ids else ()
        if zones and part.height:
            computed = assign_zones(zones, part.select("x", "y", "w", "h").to_numpy())
            part = part.with_columns(
                pl.col("zone_id").fill_null(pl.Series(computed.tolist(), dtype=pl.String))
            )
        parts.append(part)
    return pl.concat(parts) if parts else detections


def parse_log(
    path: str | Path,
    fmt: str,
    *,
    camera_id: str,
    start_time: datetime | None = None,
    fps: float | None = None,
    mot_variant: str = "auto",
    timezone: str,
) -> ParsedLog:
    """`timezone`: the site's (JSONL/Parquet timestamps without an offset are its local time)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DetectionLogError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DetectionLogError(f"{path} does not exist or is not a file")
    if fmt == "mot":
        if start_time is None or fps is None:
            raise DetectionLogError("MOT files number frames, not times: give --start-time and --fps")
        return parse_mot(
            path.read_bytes(), camera_id=camera_id, start_time=start_time, fps=fps, variant=mot_variant
        )
    if fmt == "jsonl":
        return parse_jsonl(path.read_bytes(), camera_id=camera_id, timezone=timezone)
    return parse_parquet(path, camera_id=camera_id, timezone=timezone)


def content_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def ingest_detection_log(
    warehouse: Warehouse,
    path: str | Path,
    fmt: str,
    *,
    camera_id: str,
    start_time: datetime | None = None,
    fps: float | None = None,
    batch_rows: int = 100_000,
    mot_variant: str = "auto",
    progress: bool = False,
) -> IngestSummary:
    """Parse, assign zones and land a log exactly once (batch ids: content hash + chunk index + options)."""
    if batch_rows < 1:
        raise DetectionLogError(f"batch rows must be at least 1, got {batch_rows}")
    if camera_id not in warehouse.site.camera_ids:
        raise DetectionLogError(
            f"unknown camera {camera_id!r}: the site {warehouse.site.path} has "
            f"{', '.join(warehouse.site.camera_ids)}"
        )
    parsed = parse_log(
        path,
        fmt,
        camera_id=camera_id,
        start_time=start_time,
        fps=fps,
        mot_variant=mot_variant,
        timezone=warehouse.site.timezone,
    )
    detections = with_zones(parsed.detections, warehouse.site)
    # The options that change the rows are part of the id: the same file at another fps is other data.
    options = f"{fmt}|{camera_id}|{start_time.isoformat() if start_time else ''}|{fps or ''}|{parsed.variant}"
    prefix = f"{SOURCE}:{content_hash(path)}:{hashlib.sha256(options.encode()).hexdigest()[:8]}"
    n_chunks = max(1, -(-detections.height // batch_rows))
    landed = rejected = skipped = 0
    first_skipped = False
    for i in tqdm(range(n_chunks), desc=f"landing {Path(path).name}", unit="batch", disable=not progress):
        chunk = detections.slice(i * batch_rows, batch_rows)
        window = None
        if chunk.height:
            window = (chunk["ts"].min(), chunk["ts"].max() + timedelta(microseconds=1))
        result = warehouse.append_batch(f"{prefix}:{i}", chunk, source=SOURCE, camera_id=None, window=window)
        landed += result.landed
        rejected += result.rejected
        skipped += result.skipped
        first_skipped = first_skipped or (i == 0 and result.skipped)
    dead = parsed.dead_letters
    if dead.height and not first_skipped:  # a re-ingest of the same file must not repeat its dead letters
        # PostgreSQL text refuses NUL characters: escape them, as the stream's dead letters do.
        dead = dead.with_columns(pl.col("payload", "reason").str.replace_all("\x00", "\\x00", literal=True))
        warehouse.reject(SOURCE, camera_id, dead["payload"].to_list(), dead["reason"].to_list())
    if parsed.ignored:
        log.info(
            "%d MOT ground-truth rows are not pedestrians to evaluate (consider=0 or class!=1): ignored",
            parsed.ignored,
        )
    if parsed.unscored:
        log.info(
            "%d rows carry no calibrated score (MOT conf -1 or outside 0..1): confidence NULL",
            parsed.unscored,
        )
    return IngestSummary(
        str(path),
        fmt,
        detections.height,
        dead.height,
        parsed.ignored,
        n_chunks,
        skipped,
        landed,
        rejected + dead.height,
        parsed.unscored,
    )
