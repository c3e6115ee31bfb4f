"""Stream payloads -> detection rows, vectorised per micro-batch; malformed messages become dead letters.

Two payloads are accepted on the same topics, told apart by their keys:

Our own JSON, `sightline.detections` (one message = one processed frame of one camera):

    {"camera_id": "CAM01",                      # a camera of the site config
     "ts": "2025-01-15T01:00:00.200000+00:00",   # frame capture time, ISO-8601 with a UTC offset (or Z)
     "frame_idx": 1234,                           # integer >= 0
     "detections": [                              # may be empty: the frame was processed, nobody was seen
        {"track_id": 7, "class_id": 0, "confidence": 0.91,      # integers / 0..1
         "x": 100.0, "y": 200.0, "w": 50.0, "h": 120.0,         # bbox top-left + size, pixels, w, h > 0
         "motion_score": 0.4,                                   # 0..1
         "zone_id": "Z01",                                      # optional: else assigned from site zones
         "worker_id": null}]}                                   # optional

NVIDIA DeepStream's "minimal" schema (Gst-nvmsgconv payload-type 1), one message per frame:

    {"version": "4.0", "id": 1234, "@timestamp": "2025-01-15T01:00:00.200Z", "sensorId": "CAM01",
     "objects": ["7|100|200|150|320|Person", "8|400|210|452|330|Person|#|male|35|black|none|jacket|0.87"]}

where each object is `trackingId|left|top|right|bottom|label`, optionally followed by `|#|` and the
secondary-inference attributes whose last field is the confidence. `id` is the frame number, `sensorId`
the camera id. The minimal schema carries no motion and (without attributes) no confidence: those get
`deepstream_defaults` (see `DeepStreamDefaults`), and the zone is always assigned from the site's zones.

Timestamps are ISO-8601, parsed value by value (`ingestion.timestamps`): with Z or an offset, or
without one as the site's local time. Hostile or broken producers cannot stop the consumer or poison its
state; each of these makes its message a dead letter with the reason (issue 11):
- a payload over `stream.max_message_bytes` (site.yaml, default 256 KB): refused before parsing, the
  dead letter keeps its first KB, its size and its SHA-256;
- invalid or too deeply nested JSON, NUL characters or over-long strings (`MAX_STRING_CHARS`), integers
  outside their column's range, timestamps that are no real time;
- a frame time outside [now - `stream.max_lateness_days`, now + `stream.max_future_seconds`], so a
  camera's watermark can never be pushed past the present;
- a camera id that differs from the camera of the topic the message came on (`<prefix>/<camera>/
  detections`, the level the broker's ACL ties to the publishing user).

A message is valid only as a whole: one bad detection rejects its frame, with the reason naming the
detection and the rule, and the raw payload is kept in the dead letter so nothing is lost silently.
Only the loop that decodes JSON runs per message: our JSON is decoded by msgspec straight into typed
structs (in C), whose numbers are gathered into columns without Python code per detection; everything
per detection after that is columnar (numpy/polars). A message the typed decoder refuses takes the strict
path (`json.loads`, Arrow), which finds and words the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, compress
from operator import attrgetter
from typing import Annotated

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from ingestion.schema import DETECTION_SCHEMA, UTC_TS
from ingestion.site import Site
from ingestion.timestamps import parse_iso_datetimes
from ingestion.zones import assign_zones

SIGHTLINE_KEYS = ("camera_id", "ts", "frame_idx", "detections")
DEEPSTREAM_KEYS = ("@timestamp", "sensorId", "objects")
MAX_REASON_CHARS = 500
MESSAGE_COLUMN = "_msg"  # which payload (by position) each detection row came from
MAX_STRING_CHARS = 128  # worker_id (ids of cameras and zones are checked against the site)
MAX_FRAME_IDX = 2**53  # float64 (how numbers are decoded and checked) holds integers exactly up to here
OVERSIZED_KEPT_BYTES = 1024  # of a payload over the size limit, kept in its dead letter

# Numbers arrive as float64 so that 7.5 is caught as "not an integer" instead of being truncated to 7.
_DETECTION_STRUCT = pa.struct(
    [
        ("track_id", pa.float64()),
        ("class_id", pa.float64()),
        ("confidence", pa.float64()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("w", pa.float64()),
        ("h", pa.float64()),
        ("motion_score", pa.float64()),
        ("zone_id", pa.string()),
        ("worker_id", pa.string()),
    ]
)
_REQUIRED = ("track_id", "class_id", "confidence", "x", "y", "w", "h", "motion_score")

# COCO class names (as YOLO and DeepStream's COCO models label them) plus DeepStream's generic labels.
COCO_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
LABEL_TO_CLASS = {name: i for i, name in enumerate(COCO_NAMES)} | {"vehicle": 2, "roadsign": 11}


@dataclass(frozen=True)
class DeepStreamDefaults:
    """Values the DeepStream minimal schema does not carry. Motion needs pixels, which only the edge box
    has; 0.0 (idle) is the conservative default, override it if your edge box encodes motion elsewhere."""

    confidence: float = 1.0
    motion_score: float = 0.0


@dataclass(frozen=True)
class Rejected:
    message: int  # position of the payload in the batch
    camera_id: str | None
    payload: str
    reason: str


@dataclass
class ParsedMessages:
    """What a micro-batch of messages became: rows of the valid messages and one dead letter per bad one."""

    detections: pl.DataFrame  # MESSAGE_COLUMN (index into the payloads) + DETECTION_SCHEMA, batch_id null
    rejected: list[Rejected] = field(default_factory=list)
    valid_messages: int = 0


def _is_text(value: str) -> bool:
    """Whether UTF-8 (and so PostgreSQL, DuckDB, Arrow, polars) can hold the string: JSON's \\ud800-style
    escapes give Python strings with lone surrogates, which it cannot."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def payload_text(payload: bytes) -> str:
    """The payload as storable text: undecodable bytes and NULs (which PostgreSQL text refuses) escaped."""
    return payload.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def storable_text(text: str) -> str:
    """Any Python string as text PostgreSQL and DuckDB accept: NULs and lone surrogates (JSON's "\\ud800")
    escaped."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def oversized_stub(payload: bytes) -> bytes:
    """What is kept of a payload over the size limit: its first KB, its size and its SHA-256 (distinct
    payloads stay distinct dead letters). The MQTT source makes it on receipt, so no large payload is held."""
    digest = hashlib.sha256(payload).hexdigest()
    note = f" ... [truncated: {len(payload)} bytes, sha256 {digest}]"
    return payload[:OVERSIZED_KEPT_BYTES] + note.encode()


def topic_camera(topic: str) -> str | None:
    """The camera a topic belongs to: the level before the last (`<prefix>/<camera>/detections`)."""
    levels = topic.split("/")
    return levels[-2] if len(levels) >= 2 else None


@dataclass(frozen=True)
class _Context:
    """What a message is checked against: the site's cameras, the accepted time window, the topics."""

    site: Site
    known: frozenset[str]
    now: datetime
    topics: Sequence[str] | None

    def times(self, values: pl.Series) -> pl.DataFrame:
        """Parsed frame times (`ts`, epoch us) and, where refused, the `problem`; one row per value."""
        parsed = parse_iso_datetimes(values, self.site.timezone)
        cfg = self.site.stream
        low = self.now - timedelta(days=cfg.max_lateness_days)
        high = self.now + timedelta(seconds=cfg.max_future_seconds)
        c = pl.col
        return parsed.select(
            ts=c("ts").dt.epoch("us"),
            problem=pl.when(c("problem").is_not_null())
            .then(c("problem"))
            .when(c("ts") < low)
            .then(
                pl.format(
                    f"{{}} is older than stream.max_lateness_days ({cfg.max_lateness_days:g}) allows: before "
                    f"{low:%Y-%m-%dT%H:%M:%SZ}; land old data with `sightline ingest detections`",
                    c("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
                )
            )
            .when(c("ts") > high)
            .then(
                pl.format(
                    "{} is in the future: after now + "
                    f"stream.max_future_seconds ({cfg.max_future_seconds:g}) "
                    f"= {high:%Y-%m-%dT%H:%M:%SZ}; check the camera's clock",
                    c("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
                )
            ),
        )

    def topic_problem(self, i: int, camera: str) -> str | None:
        if self.topics is None:
            return None
        expected = topic_camera(self.topics[i])
        if expected == camera:
            return None
        return (
            f"camera {camera!r} differs from the camera of topic {self.topics[i]!r} ({expected!r}): a "
            "client may publish only its own camera's detections (<prefix>/<camera_id>/detections)"
        )


def parse_messages(
    payloads: Sequence[bytes],
    site: Site,
    deepstream_defaults: DeepStreamDefaults | None = None,
    *,
    fast: bool = True,
    topics: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    now: datetime | None = None,
) -> ParsedMessages:
    """Parse and validate a micro-batch of raw message payloads (see the module doc for the formats).

    `topics`: the topic each message came on (its camera must match the message's). `sizes`: the size
    each payload had on receipt, where the receiver kept only an `oversized_stub`. `now`: the clock the
    accepted time window is relative to (default: the current time).
    `fast`: decode our JSON with msgspec into typed structs (see `_decode_frame`); messages the fast path
    cannot vouch for take the strict per-message path, which gives the same rows
    and reasons (tests check both). Never raises on any payload: bad ones become `rejected`."""
    deepstream_defaults = deepstream_defaults or DeepStreamDefaults()
    ctx = _Context(site, frozenset(site.camera_ids), now or datetime.now(UTC), topics)
    reasons: dict[int, tuple[str | None, str]] = {}  # message index -> (camera_id, reason)
    frames: list[pl.DataFrame] = []
    ours: list[tuple[int, dict]] = []
    deepstream: list[tuple[int, dict]] = []
    kept = list(payloads)  # what each dead letter stores

    limit = site.stream.max_message_bytes
    for i, payload in enumerate(payloads):  # before any parsing: a large payload costs nothing more
        size = sizes[i] if sizes is not None else len(payload)
        if size > limit:
            if size == len(payload):
                kept[i] = oversized_stub(payload)
            camera = topic_camera(topics[i]) if topics is not None else None
            reasons[i] = (
                camera if camera in ctx.known else None,
                f"payload of {size} bytes exceeds stream.max_message_bytes ({limit}); not parsed",
            )
    candidates = [i for i in range(len(payloads)) if i not in reasons]
    strict = candidates
    if fast:
        fast_rows, strict = _fast_sightline_rows(payloads, candidates, ctx)
        frames.append(fast_rows)
    for i in strict:  # per message, not per detection: decode and route
        payload = payloads[i]
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reasons[i] = (None, f"not valid JSON: {exc}")
            continue
        if isinstance(doc, dict) and all(k in doc for k in SIGHTLINE_KEYS):
            # Arrow would take a JSON boolean for a number: check those (rare) messages field by field.
            dets = doc["detections"]
            has_bool = b"true" in payload or b"false" in payload
            problem = _shape_problem(dets) if has_bool and isinstance(dets, list) else None
            if problem:
                camera = doc["camera_id"] if isinstance(doc["camera_id"], str) else None
                reasons[i] = (camera, f"detections: {problem}")
                continue
            ours.append((i, doc))
        elif isinstance(doc, dict) and all(k in doc for k in DEEPSTREAM_KEYS):
            deepstream.append((i, doc))
        else:
            keys = sorted(doc)[:10] if isinstance(doc, dict) else type(doc).__name__
            reasons[i] = (
                None,
                f"unrecognised payload {keys}: expected our JSON with keys "
                f"{list(SIGHTLINE_KEYS)} or DeepStream minimal with keys "
                f"{list(DEEPSTREAM_KEYS)}",
            )

    if ours:
        frames.append(_sightline_rows(ours, ctx, reasons))
    if deepstream:
        frames.append(_deepstream_rows(deepstream, ctx, reasons, deepstream_defaults))

    rows = pl.concat([_conform(f) for f in frames], how="vertical") if frames else _empty_rows()
    rows = _reject_invalid_rows(rows, reasons, site)
    rows = rows.filter(~pl.col("_msg").is_in(list(reasons)))
    detections = _assign_zones(rows, site).select(MESSAGE_COLUMN, *DETECTION_SCHEMA.names())
    rejected = [
        Rejected(i, cam, payload_text(kept[i]), storable_text(reason[:MAX_REASON_CHARS]))
        for i, (cam, reason) in sorted(reasons.items())
    ]
    return ParsedMessages(detections, rejected, len(payloads) - len(reasons))


# --- our JSON, whole batch at once ---------------------------------------------------------------


class _Detection(msgspec.Struct, gc=False):
    """A detection the fast path vouches for: every number present and a number (ints are taken as floats,
    as the strict path's Arrow conversion does), the strings strings or null; unknown keys are ignored."""

    track_id: float
    class_id: float
    confidence: float
    x: float
    y: float
    w: float
    h: float
    motion_score: float
    zone_id: str | None = None
    worker_id: str | None = None


class _Frame(msgspec.Struct, gc=False):
    camera_id: str
    ts: str
    frame_idx: Annotated[float, msgspec.Meta(ge=0, le=MAX_FRAME_IDX)]  # an integral float passes, as before
    detections: list[_Detection]


_FRAME_DECODER = msgspec.json.Decoder(_Frame)
_NUMBERS = attrgetter(*_REQUIRED)
_STRINGS = attrgetter("zone_id", "worker_id")


def _decode_frame(payload: bytes) -> _Frame | None:
    """Our JSON decoded straight into typed structs (msgspec, in C), or None where the strict path must
    judge the message: a JSON boolean, a null or missing number, a number out of float range, a
    non-string in a string field, NaN, lone surrogates, a BOM... (msgspec refuses all of these), and bytes
    that are not UTF-8 (msgspec does not check the keys it ignores, `json.loads` does)."""
    if b'"detections"' not in payload:
        return None
    if not payload.isascii():
        try:
            payload.decode()
        except UnicodeDecodeError:
            return None
    try:
        return _FRAME_DECODER.decode(payload)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


def _fast_sightline_rows(
    payloads: Sequence[bytes],
    indices: list[int],
    ctx: _Context,
) -> tuple[pl.DataFrame, list[int]]:
    """Decode the batch's messages of our format with msgspec and build the detection columns without a
    Python loop over detections. Messages that do not decode as complete, acceptable frames (camera,
    topic, time window) are returned as indices for the strict path, which finds the reason."""
    decoded = [(i, frame) for i in indices if (frame := _decode_frame(payloads[i])) is not None]
    if not decoded:
        return _empty_rows(), list(indices)
    msg_idx = [i for i, _ in decoded]
    frames = [f for _, f in decoded]
    cams = pl.Series(list(map(attrgetter("camera_id"), frames)), dtype=pl.String)
    times = ctx.times(pl.Series(list(map(attrgetter("ts"), frames)), dtype=pl.String))
    frame_idx = pl.Series(list(map(attrgetter("frame_idx"), frames)), dtype=pl.Float64)
    ok = cams.is_in(list(ctx.known)) & times["problem"].is_null() & (frame_idx == frame_idx.floor())
    if ctx.topics is not None:
        ok = ok & (cams == pl.Series([topic_camera(ctx.topics[i]) for i in msg_idx], dtype=pl.String))
    keep = ok.to_numpy()
    if not keep.all():
        frames = list(compress(frames, keep))
        msg_idx = list(compress(msg_idx, keep))
    strict = sorted(set(indices) - set(msg_idx))
    if not frames:
        return _empty_rows(), strict
    det_lists = list(map(attrgetter("detections"), frames))
    m = _Messages(
        msg_idx=msg_idx,
        cams=cams.filter(ok).to_list(),
        ts_us=times["ts"].filter(ok).to_list(),
        frames=frame_idx.filter(ok).cast(pl.Int64).to_list(),
        counts=list(map(len, det_lists)),
    )
    dets = list(chain.from_iterable(det_lists))
    n = len(dets)
    numbers = np.fromiter(
        chain.from_iterable(map(_NUMBERS, dets)), dtype=np.float64, count=n * len(_REQUIRED)
    ).reshape(n, len(_REQUIRED))
    zones, workers = zip(*map(_STRINGS, dets), strict=True) if n else ((), ())
    columns = {name: numbers[:, k] for k, name in enumerate(_REQUIRED)}
    rows = pl.DataFrame(columns).with_columns(
        zone_id=pl.Series(zones, dtype=pl.String),
        worker_id=pl.Series(workers, dtype=pl.String),
        **m.per_item_columns(),
    )
    return rows, strict


# --- message-level fields (per message) ---------------------------------------------------------


def _frame_index(value: object) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) < 20:  # nvmsgconv: int member or string
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FRAME_IDX:
        shown = repr(value)[:40]
        raise ValueError(f"must be an integer 0..2^53, got {shown}")
    return value


def _message_fields(
    camera: object,
    ts: tuple[int | None, str | None],
    frame: object,
    ctx: _Context,
    i: int,
    names: tuple[str, str, str],
) -> tuple[str, int, int] | tuple[str | None, str]:
    """Validated (camera_id, ts_us, frame_idx), or (camera_id-or-None, reason). `ts` is already parsed."""
    cam_key, ts_key, frame_key = names
    if not isinstance(camera, str):
        return None, f"{cam_key} must be a string, got {repr(camera)[:40]}"
    if camera not in ctx.known:
        return None, f"{cam_key} {camera[:64]!r} is not a camera of the site config; add it to site.yaml"
    if problem := ctx.topic_problem(i, camera):
        return camera, problem
    ts_us, ts_problem = ts
    if ts_problem is not None:
        return camera, f"{ts_key}: {ts_problem}"
    try:
        frame_idx = _frame_index(frame)
    except ValueError as exc:
        return camera, f"{frame_key}: {exc}"
    return camera, ts_us, frame_idx


@dataclass
class _Messages:
    """The message-level fields of the well-formed messages of one batch, and their items in order."""

    msg_idx: list[int] = field(default_factory=list)
    cams: list[str] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    items: list = field(default_factory=list)

    def per_item_columns(self) -> dict[str, pl.Series]:
        """Each message's fields repeated for each of its items, plus the item's position in it."""
        counts = np.asarray(self.counts, dtype=np.int64)
        starts = np.cumsum(counts) - counts  # each message's first item

        def repeated(values: list, dtype: pl.DataType) -> pl.Series:
            return pl.Series(
                np.repeat(np.asarray(values, dtype=object if dtype == pl.String else np.int64), counts),
                dtype=dtype,
            )

        return {
            "_msg": repeated(self.msg_idx, pl.Int64),
            "camera_id": repeated(self.cams, pl.String),
            "ts": repeated(self.ts_us, pl.Int64),
            "frame_idx": repeated(self.frames, pl.Int64),
            "_det": pl.Series(np.arange(counts.sum()) - np.repeat(starts, counts), dtype=pl.Int64),
        }


def _gather_messages(
    messages: list[tuple[int, dict]],
    ctx: _Context,
    reasons: dict[int, tuple[str | None, str]],
    keys: tuple[str, str, str],
    items_of: Callable[[dict], tuple[list | None, str | None]],
) -> _Messages:
    """Check each message's camera, timestamp and frame (under `keys`) and its item list; the bad ones go
    to `reasons`, the rest are gathered. The timestamps of all messages are parsed at once."""
    out = _Messages()
    cam_key, ts_key, frame_key = keys
    raw_ts = [doc[ts_key] for _, doc in messages]
    texts = [v if isinstance(v, str) and _is_text(v) else None for v in raw_ts]
    times = ctx.times(pl.Series(texts, dtype=pl.String))
    parsed: list[tuple[int | None, str | None]] = []
    for v, text, ts, problem in zip(
        raw_ts, texts, times["ts"].to_list(), times["problem"].to_list(), strict=True
    ):
        if text is not None:
            parsed.append((ts, None) if problem is None else (None, problem))
        elif isinstance(v, str):
            parsed.append((None, "must be an ISO-8601 string, got a string with a lone UTF-16 surrogate"))
        else:
            parsed.append((None, f"must be an ISO-8601 string, got {type(v).__name__}"))
    for (i, doc), ts in zip(messages, parsed, strict=True):
        fields = _message_fields(doc[cam_key], ts, doc.get(frame_key), ctx, i, keys)
        if len(fields) == 2:
            reasons[i] = fields
            continue
        items, problem = items_of(doc)
        if problem:
            reasons[i] = (fields[0], problem)
            continue
        out.msg_idx.append(i)
        out.cams.append(fields[0])
        out.ts_us.append(fields[1])
        out.frames.append(fields[2])
        out.counts.append(len(items))
        out.items.extend(items)
    return out


def _sightline_items(doc: dict) -> tuple[list | None, str | None]:
    d = doc["detections"]
    if not isinstance(d, list):
        return None, f"detections must be a list, got {type(d).__name__}"
    return d, None


def _sightline_rows(
    messages: list[tuple[int, dict]], ctx: _Context, reasons: dict[int, tuple[str | None, str]]
) -> pl.DataFrame:
    m = _gather_messages(messages, ctx, reasons, ("camera_id", "ts", "frame_idx"), _sightline_items)
    if not m.msg_idx:
        return _empty_rows()
    table = _detections_table(m.items, m.counts, m.msg_idx, m.cams, reasons)
    return pl.from_arrow(table).with_columns(**m.per_item_columns())


def _detections_table(
    dets: list,
    counts: list[int],
    msg_idx: list[int],
    cams: list[str],
    reasons: dict[int, tuple[str | None, str]],
) -> pa.Table:
    """Detections of all messages as one Arrow struct array (type-checked in C++). If any detection has the
    wrong shape, fall back to converting message by message to find the culprits (the error path only)."""
    try:
        return pa.Table.from_struct_array(pa.array(dets, type=_DETECTION_STRUCT))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, UnicodeEncodeError):
        pass
    parts, start = [], 0
    for i, cam, n in zip(msg_idx, cams, counts, strict=True):
        chunk = dets[start : start + n]
        start += n
        try:
            parts.append(pa.array(chunk, type=_DETECTION_STRUCT))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, UnicodeEncodeError) as exc:
            reasons[i] = (cam, f"detections: {_shape_problem(chunk) or exc}")
            parts.append(pa.nulls(n, type=_DETECTION_STRUCT))  # keeps row alignment; the message is rejected
    return pa.Table.from_struct_array(pa.concat_arrays(parts) if parts else pa.array([], _DETECTION_STRUCT))


def _shape_problem(detections: list) -> str | None:
    """A readable description of the first wrongly typed field (error path only)."""
    for k, det in enumerate(detections):
        if not isinstance(det, dict):
            return f"[{k}] must be an object, got {type(det).__name__}"
        for name in _REQUIRED:
            v = det.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                return f"[{k}].{name} must be a number, got {v!r}"
        for name in ("zone_id", "worker_id"):
            v = det.get(name)
            if v is not None and not isinstance(v, str):
                return f"[{k}].{name} must be a string or null, got {v!r}"
            if v is not None and not _is_text(v):
                return f"[{k}].{name} holds a lone UTF-16 surrogate, which is no text"
    return None


def _deepstream_items(doc: dict) -> tuple[list | None, str | None]:
    objs = doc["objects"]
    if not isinstance(objs, list) or not all(isinstance(o, str) for o in objs):
        return None, "objects must be a list of 'trackingId|left|top|right|bottom|label' strings"
    if not _is_text("".join(objs)):
        return None, "objects: a string holds a lone UTF-16 surrogate, which is no text"
    return objs, None


def _deepstream_rows(
    messages: list[tuple[int, dict]],
    ctx: _Context,
    reasons: dict[int, tuple[str | None, str]],
    defaults: DeepStreamDefaults,
) -> pl.DataFrame:
    m = _gather_messages(messages, ctx, reasons, ("sensorId", "@timestamp", "id"), _deepstream_items)
    if not m.msg_idx:
        return _empty_rows()
    parts = pl.Series("o", m.items, dtype=pl.String).str.split("|")
    n_parts = parts.list.len()
    has_attrs = (n_parts > 7) & (parts.list.get(6, null_on_oob=True) == "#")

    def num(k: int) -> pl.Expr:
        return pl.col("p").list.get(k, null_on_oob=True).str.strip_chars().cast(pl.Float64, strict=False)

    left, top, right, bottom = num(1), num(2), num(3), num(4)
    label = pl.col("p").list.get(5, null_on_oob=True).str.strip_chars().str.to_lowercase()
    confidence = (
        pl.when(pl.col("attrs"))
        .then(pl.col("p").list.last().str.strip_chars().cast(pl.Float64, strict=False))
        .otherwise(pl.lit(defaults.confidence))
    )
    return (
        pl.DataFrame({"p": parts, "attrs": has_attrs, "n": n_parts})
        .select(
            track_id=num(0),
            class_id=label.replace_strict(LABEL_TO_CLASS, default=None, return_dtype=pl.Float64),
            confidence=confidence,
            x=left,
            y=top,
            w=right - left,
            h=bottom - top,
            motion_score=pl.lit(defaults.motion_score, dtype=pl.Float64),
            zone_id=pl.lit(None, dtype=pl.String),  # assigned from the site's zones
            worker_id=pl.lit(None, dtype=pl.String),
            _short=pl.col("n") < 6,
            _label=label,
        )
        .with_columns(**m.per_item_columns())
    )


# --- row-level validation (vectorised) -------------------------------------------------------------

_ROW_COLUMNS = {
    "_msg": pl.Int64,
    "_det": pl.Int64,
    "camera_id": pl.String,
    "ts": pl.Int64,
    "frame_idx": pl.Int64,
    "track_id": pl.Float64,
    "class_id": pl.Float64,
    "confidence": pl.Float64,
    "x": pl.Float64,
    "y": pl.Float64,
    "w": pl.Float64,
    "h": pl.Float64,
    "motion_score": pl.Float64,
    "zone_id": pl.String,
    "worker_id": pl.String,
    "_short": pl.Boolean,
    "_label": pl.String,
}


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=_ROW_COLUMNS)


def _conform(rows: pl.DataFrame) -> pl.DataFrame:
    """Both formats to the same columns (each lacks a few the other has)."""
    missing = [pl.lit(None, dtype=t).alias(n) for n, t in _ROW_COLUMNS.items() if n not in rows.columns]
    return rows.with_columns(missing).select([pl.col(n).cast(t) for n, t in _ROW_COLUMNS.items()])


def _reject_invalid_rows(
    rows: pl.DataFrame,
    reasons: dict[int, tuple[str | None, str]],
    site: Site,
) -> pl.DataFrame:
    """Check every rule per row at once; the first broken rule of a message's first bad row is its reason."""
    c = pl.col
    max_int = float(2**53)
    zone_keys = [f"{z.camera}/{z.id}" for z in site.zones]  # float64 holds integers exactly up to here

    def integer(name: str, low: float, high: float) -> pl.Expr:
        v = c(name)
        return v.is_null() | ~v.is_finite() | (v != v.floor()) | (v < low) | (v > high)

    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (c("_short"), pl.lit("object must be 'trackingId|left|top|right|bottom|label[|#|...|confidence]'")),
        (
            c("_label").is_not_null() & c("class_id").is_null(),
            pl.format("unknown label '{}' (expected a COCO class name)", c("_label")),
        ),
    ]
    for name in _REQUIRED:
        rules.append((c(name).is_null(), pl.lit(f"{name} is missing or not a number")))
    rules += [
        (integer("track_id", 0, max_int), pl.format("track_id {} must be an integer >= 0", c("track_id"))),
        (integer("class_id", 0, 32767), pl.format("class_id {} must be an integer 0..32767", c("class_id"))),
        (~c("confidence").is_between(0, 1), pl.format("confidence {} outside [0, 1]", c("confidence"))),
        (~c("motion_score").is_between(0, 1), pl.format("motion_score {} outside [0, 1]", c("motion_score"))),
        (~(c("x").is_finite() & c("y").is_finite()), pl.lit("x, y must be finite")),
        (
            ~(c("w").is_finite() & (c("w") > 0) & c("h").is_finite() & (c("h") > 0)),
            pl.format("bbox size w={}, h={} must be > 0", c("w"), c("h")),
        ),
        (~c("confidence").is_finite() | (c("x").abs() > 3.0e38), pl.lit("value out of range")),
        (
            c("zone_id").is_not_null()
            & ~pl.concat_str("camera_id", "zone_id", separator="/").is_in(zone_keys),
            pl.format("zone_id '{}' is not a zone of camera {}", c("zone_id"), c("camera_id")),
        ),
        (
            c("worker_id").str.len_chars() > MAX_STRING_CHARS,
            pl.lit(f"worker_id longer than {MAX_STRING_CHARS} characters"),
        ),
        (c("worker_id").str.contains("\x00", literal=True), pl.lit("worker_id contains a NUL character")),
        (
            pl.len().over("_msg", "track_id") > 1,
            pl.format("track_id {} appears twice in one frame", c("track_id")),
        ),
    ]
    reason = pl.coalesce([pl.when(cond.fill_null(False)).then(text) for cond, text in rules])
    bad = (
        rows.with_columns(_reason=reason)
        .filter(c("_reason").is_not_null())
        .group_by("_msg", maintain_order=True)
        .agg(c("camera_id").first(), c("_det").first(), c("_reason").first(), pl.len().alias("_n"))
    )
    for i, cam, det, why, n in bad.iter_rows():  # one per bad message
        more = f" (and {n - 1} more)" if n > 1 else ""
        reasons.setdefault(int(i), (cam, f"detection [{det}]: {why}{more}"))
    return rows


def _assign_zones(rows: pl.DataFrame, site: Site) -> pl.DataFrame:
    """Cast to the warehouse types and fill zone_id from the site's zones where the producer left it out."""
    rows = rows.select(
        "_msg",
        ts=pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(UTC_TS),
        camera_id=pl.col("camera_id"),
        frame_idx=pl.col("frame_idx"),
        track_id=pl.col("track_id").cast(pl.Int64),
        class_id=pl.col("class_id").cast(pl.Int16),
        confidence=pl.col("confidence").cast(pl.Float32),
        x=pl.col("x").cast(pl.Float32),
        y=pl.col("y").cast(pl.Float32),
        w=pl.col("w").cast(pl.Float32),
        h=pl.col("h").cast(pl.Float32),
        zone_id=pl.col("zone_id"),
        motion_score=pl.col("motion_score").cast(pl.Float32),
        worker_id=pl.col("worker_id"),
        batch_id=pl.lit(None, dtype=pl.String),
    )
    missing = rows["zone_id"].is_null()
    if not missing.any():
        return rows
    assigned = np.full(rows.height, "", dtype=object)
    cams = rows["camera_id"].to_numpy()
    todo = missing.to_numpy()
    xywh = rows.select("x", "y", "w", "h").to_numpy()
    for camera_id in np.unique(cams[todo]):  # per camera, vectorised within
        sel = (cams == camera_id) & todo
        zones = assign_zones(site.zones_for(str(camera_id)), xywh[sel])
        assigned[sel] = np.where(zones == None, "", zones)  # noqa: E711 - elementwise comparison
    filled = pl.Series(assigned.astype(str), dtype=pl.String).replace("", None)
    return rows.with_columns(zone_id=pl.when(missing).then(filled).otherwise(pl.col("zone_id")))
