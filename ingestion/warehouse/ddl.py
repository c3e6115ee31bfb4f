"""Table definitions of the `raw` and `ref` schemas, in one place, rendered for PostgreSQL or DuckDB.

The detection and camera-health columns come from `ingestion.schema`; the ledger, dead letters,
watermarks and reference tables are declared here. Types are written as PostgreSQL types and mapped to
DuckDB's names. Every table and its key columns carry a comment a BI or data engineer can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestion.schema import CAMERA_HEALTH_COLUMNS, CAMERA_HEALTH_KEY, DETECTION_COLUMNS, DETECTION_KEY

# Schemas `sightline db setup` creates, owned by the role that runs it (the owner):
# - DATA_SCHEMAS hold the tables below; the writer role reads and writes their rows, never their DDL.
# - MODEL_SCHEMAS are SQLMesh's views (staging: detection-level, never BI; analytics: what BI reads), and
#   SQLMESH_SCHEMAS add SQLMesh's physical tables (sqlmesh__<schema>) and its state (sqlmesh). The writer
#   may create objects in exactly these, so it builds the marts without being able to create a schema.
DATA_SCHEMAS = ("raw", "ref", "ops")
MODEL_SCHEMAS = ("staging", "analytics")
BI_SCHEMA = "analytics"
SQLMESH_STATE_SCHEMA = "sqlmesh"
SQLMESH_SCHEMAS = (*MODEL_SCHEMAS, *(f"sqlmesh__{s}" for s in MODEL_SCHEMAS), SQLMESH_STATE_SCHEMA)
SCHEMAS = DATA_SCHEMAS + MODEL_SCHEMAS

_DUCKDB_TYPES = {
    "timestamptz": "TIMESTAMPTZ",
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "real": "REAL",
    "double precision": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
}


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    nullable: bool = False
    comment: str = ""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    comment: str = ""
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def create_sql(self, backend: str, *, unique_key: bool = True, suffix: str = "") -> str:
        """CREATE TABLE IF NOT EXISTS; `unique_key=False` leaves out the primary key (see DETECTIONS)."""
        lines = []
        for c in self.columns:
            sql_type = c.pg_type if backend == "postgres" else _DUCKDB_TYPES[c.pg_type]
            lines.append(f"{c.name} {sql_type}{'' if c.nullable else ' NOT NULL'}")
        if self.primary_key and unique_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} (\n    " + ",\n    ".join(lines) + f"\n){suffix}"

    def comment_sql(self) -> list[str]:
        """COMMENT ON statements (same syntax on both backends). Literals are our own constants."""
        out = [f"COMMENT ON TABLE {self.qualified} IS '{_quote(self.comment)}'"]
        out += [
            f"COMMENT ON COLUMN {self.qualified}.{c.name} IS '{_quote(c.comment)}'"
            for c in self.columns
            if c.comment
        ]
        return out

    def pg_copy_columns(self) -> list[tuple[str, str]]:
        return [(c.name, c.pg_type) for c in self.columns]


def _quote(text: str) -> str:
    return text.replace("'", "''")


_DETECTION_COMMENTS = {
    "ts": "frame capture time (UTC)",
    "camera_id": "camera that saw it; one of ref.cameras",
    "frame_idx": "frame number within the source",
    "track_id": "tracker id, unique per camera per day at least",
    "class_id": "COCO class id; 0 = person",
    "confidence": "detector confidence 0..1; null when the source gave no calibrated score (MOT conf -1)",
    "x": "bbox left, pixels",
    "y": "bbox top, pixels",
    "w": "bbox width, pixels",
    "h": "bbox height, pixels",
    "zone_id": "zone (ref.zones) holding the bbox bottom-centre; null outside all zones",
    "motion_score": "share of moving pixels inside the bbox, 0..1",
    "worker_id": "identity from upstream when known",
    "batch_id": "ingest batch (raw.ingest_batches) that landed the row",
}

DETECTIONS = Table(
    "raw",
    "detections",
    tuple(
        Column(name, spec[1], spec[3], _DETECTION_COMMENTS.get(name, ""))
        for name, spec in DETECTION_COLUMNS.items()
    ),
    DETECTION_KEY,
    "One row per tracked object per processed frame, landed exactly once per ingest batch. "
    "Unique on (camera_id, ts, track_id). Timestamps UTC; days are site-local.",
)

CAMERA_HEALTH = Table(
    "raw",
    "camera_health",
    tuple(Column(name, spec[1], spec[3]) for name, spec in CAMERA_HEALTH_COLUMNS.items()),
    CAMERA_HEALTH_KEY,
    "What each camera delivered per 10 s window (frames read/processed/dropped, decode errors, latency). "
    "Zero detections is not zero health: a missing window is downtime.",
)

INGEST_BATCHES = Table(
    "raw",
    "ingest_batches",
    (
        Column("batch_id", "text", comment="producer-chosen id; a replayed id is skipped"),
        Column("source", "text", comment="simulator, detection_log, video, stream, ..."),
        Column("camera_id", "text", True),
        Column("window_start", "timestamptz", True, "the batch's [start, end) bound on ts"),
        Column("window_end", "timestamptz", True),
        Column("row_count", "bigint", comment="detection rows landed by this batch"),
        Column("rejected_count", "bigint", comment="rows of this batch sent to raw.rejected_detections"),
        Column("health_rows", "bigint", comment="camera_health rows landed by this batch"),
        Column("status", "text", comment="committed, or replaced once replace_partition took over its rows"),
        Column("committed_at", "timestamptz"),
    ),
    ("batch_id",),
    "The landing ledger: one row per committed batch, written in the same transaction as its rows, "
    "which makes landing exactly-once.",
)

REJECTED_DETECTIONS = Table(
    "raw",
    "rejected_detections",
    (
        Column("received_at", "timestamptz"),
        Column("source", "text"),
        Column("camera_id", "text", True),
        Column("batch_id", "text", True),
        Column("payload", "text", comment="the rejected row or message as received (JSON for rows)"),
        Column("reason", "text", comment="the rule(s) it broke"),
    ),
    (),
    "Dead letters: input that did not become rows, with the reason. Nothing is dropped silently.",
)

CAMERA_WATERMARKS = Table(
    "raw",
    "camera_watermarks",
    (
        Column("camera_id", "text"),
        Column("max_event_ts", "timestamptz", comment="latest detection ts landed for the camera"),
        Column("updated_at", "timestamptz"),
    ),
    ("camera_id",),
    "Event-time watermark per camera, advanced in the same transaction as each landing.",
)

DAYS_TO_REBUILD = Table(
    "raw",
    "days_to_rebuild",
    (
        Column("camera_id", "text"),
        Column("day", "date", comment="site-local day whose derived tables are stale"),
        Column("reason", "text"),
        Column("marked_at", "timestamptz"),
    ),
    ("camera_id", "day"),
    "Camera-days that received late data (older than watermark - allowed lateness) after they were "
    "built; orchestration rebuilds them and clears the row.",
)

CAMERAS = Table(
    "ref",
    "cameras",
    (
        Column("camera_id", "text"),
        Column("name", "text"),
        Column("source", "text"),
        Column("width", "integer"),
        Column("height", "integer"),
        Column("fps", "double precision"),
    ),
    ("camera_id",),
    "Cameras of the site, loaded from the site config by `sightline db setup`.",
)

ZONES = Table(
    "ref",
    "zones",
    (
        Column("zone_id", "text"),
        Column("camera_id", "text"),
        Column("name", "text"),
        Column("zone_type", "text", comment="work_area | inspection | break_area | restricted"),
        Column("polygon", "text", comment="JSON [[x, y], ...] in the camera's pixels"),
        Column("min_workers", "integer"),
        Column("max_workers", "integer"),
        Column("alert_on_empty", "boolean"),
        Column("alert_on_overflow", "boolean"),
    ),
    ("zone_id",),
    "Zones of each camera, loaded from the site config.",
)

INDEX_TIMELINE = Table(
    "ref",
    "index_timeline",
    (
        Column("date", "date", comment="site-local day"),
        Column("index_number", "integer", comment="1..schedule.indices"),
        Column("scheduled_start", "timestamptz"),
        Column("scheduled_end", "timestamptz", comment="exclusive; includes any break the block meets"),
        Column("working_seconds", "double precision", comment="equal for every block of a day"),
    ),
    ("date", "index_number"),
    "The working time of each workday cut into equal index blocks, with the schedule in force that day "
    "(schedule.changes, schedule.overrides). Filled for every day that has landed data (and on demand); "
    "a stored day is history: editing the site file never rewrites it, only rebuilding that day does.",
)

WORKERS = Table(
    "ref",
    "workers",
    (
        Column("worker_id", "text", comment="identity upstream puts in detections.worker_id (badge, re-id)"),
        Column("name", "text"),
        Column("shift", "text", comment="free text from the registry; empty when not given"),
        Column("zones", "text", comment="JSON list of the zone ids the worker is assigned to"),
        Column("skill", "text", comment="free text from the registry; empty when not given"),
    ),
    ("worker_id",),
    "The worker registry (site config `workers:` or the CSV it names). A worker_id seen in detections "
    "but missing here is kept and reported (analytics.worker_daily.registered = false).",
)

SITE = Table(
    "ref",
    "site",
    (
        Column("name", "text"),
        Column("timezone", "text"),
        Column("work_start", "text", comment="local HH:MM"),
        Column("work_end", "text"),
        Column("indices", "integer"),
        Column("idle_motion_score", "double precision"),
        Column("session_gap_seconds", "double precision"),
        Column("min_session_seconds", "double precision"),
        Column("excessive_idle_seconds", "double precision"),
        Column("overflow_seconds", "double precision"),
        Column("empty_seconds", "double precision"),
    ),
    (),
    "One row: the site's name, timezone, schedule and thresholds, for SQL models to join.",
)

RAW_TABLES = (
    DETECTIONS,
    CAMERA_HEALTH,
    INGEST_BATCHES,
    REJECTED_DETECTIONS,
    CAMERA_WATERMARKS,
    DAYS_TO_REBUILD,
)
REF_TABLES = (CAMERAS, ZONES, INDEX_TIMELINE, SITE, WORKERS)

# ------------------------------------------------------------------------------------------------ ops
# State that outlives every rebuild of the marts: alerts and the ledger of their notifications.

ALERTS = Table(
    "ops",
    "alerts",
    (
        Column("alert_id", "text", comment="md5 of rule | subject | start epoch microseconds: deterministic"),
        Column("rule_name", "text", comment="the site.yaml alerts rule that raised it"),
        Column(
            "alert_type",
            "text",
            comment="idle | restricted_zone_entry | zone_overflow | zone_empty | "
            "after_hours_presence | camera_down | productivity_drop",
        ),
        Column("severity", "text", comment="info | warning | error | critical"),
        Column("subject", "text", comment="what it is about: camera, zone and track/visitor/worker/index"),
        Column("camera_id", "text", True, "null for site-level alerts (productivity_drop)"),
        Column("zone_id", "text", True, "zone concerned (ref.zones), when there is one"),
        Column("track_id", "bigint", True, "tracker id of the person concerned, when there is one"),
        Column(
            "visitor_id",
            "text",
            True,
            "the person concerned as analytics.sessions.visitor_id (with "
            "camera_id: the track fragments linked by analytics.track_links); set by the day's batch "
            "evaluation, so a live alert has it once the marts of its day are built, null until then "
            "and for alerts about no person",
        ),
        Column("worker_id", "text", True, "worker identity from upstream, when known"),
        Column("message", "text", comment="one readable sentence"),
        Column("started_at", "timestamptz", comment="when the condition started (UTC)"),
        Column("last_seen_at", "timestamptz", comment="latest time the condition was seen to hold"),
        Column("ended_at", "timestamptz", True, "when the condition cleared; null while it holds"),
        Column("status", "text", comment="open | acknowledged | resolved"),
        Column("acknowledged_by", "text", True, "who acknowledged it (`sightline alerts ack`)"),
        Column("acknowledged_at", "timestamptz", True, "when it was first acknowledged"),
        Column("action_taken", "text", True, "what the people acting on it wrote"),
        Column("resolved_by", "text", True, "who resolved it; `sightline` when the condition cleared"),
        Column("resolved_at", "timestamptz", True, "when it was resolved"),
        Column("auto_resolved", "boolean", comment="resolved because the condition cleared"),
        Column("source", "text", comment="live (the stream) or batch (the day's marts)"),
        Column("notify", "boolean", comment="false when raised in the rule's quiet hours: kept, not sent"),
        Column("metadata", "text", comment="JSON: measured values and the thresholds applied"),
        Column("created_at", "timestamptz", comment="when Sightline raised it (wall clock)"),
        Column("updated_at", "timestamptz", comment="last change of any column"),
    ),
    ("alert_id",),
    "One row per alert, raised live from the stream or from the day's anomalies; acknowledgement and "
    "resolution are kept across any rebuild of the marts.",
)

ALERT_DELIVERIES = Table(
    "ops",
    "alert_deliveries",
    (
        Column("alert_id", "text"),
        Column("channel", "text", comment="alerts.channels name in site.yaml"),
        Column("event", "text", comment="new | acknowledged | resolved"),
        Column("attempt", "integer", comment="1, 2, ...: each try is one row"),
        Column("status", "text", comment="sending | sent | failed | gave_up"),
        Column("response_code", "integer", True, "HTTP status, SMTP reply code or MQTT reason code"),
        Column("error", "text", True),
        Column("started_at", "timestamptz"),
        Column("sent_at", "timestamptz", True, "when the channel accepted it"),
        Column("next_attempt_at", "timestamptz", True, "after a failure: not retried before this"),
    ),
    ("alert_id", "channel", "event", "attempt"),
    "The notification ledger: each alert event goes to each of its channels exactly once; a failed try is "
    "retried with backoff as a new attempt row.",
)

LIVE_ALERT_STATE = Table(
    "ops",
    "live_alert_state",
    (
        Column("camera_id", "text"),
        Column("evaluated_through", "timestamptz", comment="detections up to here were evaluated"),
        Column("updated_at", "timestamptz"),
    ),
    ("camera_id",),
    "How far the stream's live alert rules have evaluated each camera; committed with the alerts it raised, "
    "so a restart resumes there.",
)

OPS_TABLES = (ALERTS, ALERT_DELIVERIES, LIVE_ALERT_STATE)
ACTIVE_ALERTS_VIEW = "analytics.active_alerts"


def active_alerts_view_sql(backend: str) -> list[str]:
    """The BI view over ops.alerts: open and acknowledged alerts with camera and zone names, local times.

    Created by setup as the owner, so BI reads it with the owner's rights without any right on `ops`."""
    local = "timezone(s.timezone, {c})" if backend == "duckdb" else "{c} AT TIME ZONE s.timezone"
    return [
        f"DROP VIEW IF EXISTS {ACTIVE_ALERTS_VIEW}",
        f"""CREATE VIEW {ACTIVE_ALERTS_VIEW} AS
SELECT a.alert_id, a.rule_name, a.alert_type, a.severity, a.status, a.camera_id, c.name AS camera_name,
       a.zone_id, z.name AS zone_name, a.track_id, a.visitor_id, a.worker_id, a.message, a.started_at,
       {local.format(c="a.started_at")} AS started_local, a.last_seen_at, a.ended_at,
       a.acknowledged_by, a.acknowledged_at, a.action_taken, a.source
FROM ops.alerts AS a
LEFT JOIN ref.cameras AS c ON c.camera_id = a.camera_id
LEFT JOIN ref.zones AS z ON z.zone_id = a.zone_id
CROSS JOIN (SELECT timezone FROM ref.site LIMIT 1) AS s
WHERE a.status IN ('open', 'acknowledged')""",
        f"COMMENT ON VIEW {ACTIVE_ALERTS_VIEW} IS 'Alerts someone should act on (open or acknowledged), "
        "with camera and zone names; started_local is site-local time. Acknowledge or resolve with "
        "`sightline alerts ack|resolve`.'",
        *(
            f"COMMENT ON COLUMN {ACTIVE_ALERTS_VIEW}.{name} IS '{_quote(text)}'"
            for name, text in _ACTIVE_ALERTS_COLUMNS.items()
        ),
    ]


# Column comments of the view: the table's, and the names and local time it adds.
_ACTIVE_ALERTS_COLUMNS = {
    **{
        c.name: c.comment
        for c in ALERTS.columns
        if c.name
        in (
            "alert_id",
            "rule_name",
            "alert_type",
            "severity",
            "status",
            "camera_id",
            "zone_id",
            "track_id",
            "visitor_id",
            "worker_id",
            "message",
            "started_at",
            "last_seen_at",
            "ended_at",
            "acknowledged_by",
            "acknowledged_at",
            "action_taken",
            "source",
        )
    },
    "camera_name": "camera name (ref.cameras)",
    "zone_name": "zone name (ref.zones)",
    "started_local": "started_at in the site's time zone (wall clock)",
}


# ---------------------------------------------------------------------------------------------- functions
# PostgreSQL functions that setup creates (owned by the owner, EXECUTE revoked from PUBLIC and granted to
# the writer by `sightline db grant-writer`). SECURITY DEFINER lets the writer do exactly these two owner
# actions and nothing else; search_path is pinned so the caller cannot substitute objects.

CREATE_PARTITION_FUNCTION = "raw.create_detections_partition(date, timestamptz, timestamptz)"
ANALYZE_FUNCTION = "raw.analyze_landed_tables()"
OWNER_FUNCTIONS = (CREATE_PARTITION_FUNCTION, ANALYZE_FUNCTION)


def migration_sql() -> list[str]:
    """Statements that bring a table created by an older version up to the DDL above (same syntax on
    both backends; each is a no-op when already applied). Run by setup after CREATE TABLE IF NOT EXISTS."""
    # confidence became nullable (issue 10): a tracker's MOT results with conf -1 carry no score.
    return ["ALTER TABLE raw.detections ALTER COLUMN confidence DROP NOT NULL"]


def postgres_function_sql() -> list[str]:
    """CREATE OR REPLACE the owner's SECURITY DEFINER functions (see above), PUBLIC's EXECUTE revoked."""
    analyze = "\n".join(f"    ANALYZE {t.qualified};" for t in RAW_TABLES + REF_TABLES)
    return [
        # One site-local day of the plain (non-TimescaleDB) raw.detections, created on demand while landing.
        # The caller passes the day's UTC bounds (the site's timezone lives in Python); they must span one
        # day around that date, so the writer cannot create arbitrary partitions.
        """CREATE OR REPLACE FUNCTION raw.create_detections_partition(day date, day_start timestamptz,
                                                               day_end timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF day_end <= day_start OR day_end - day_start > interval '26 hours'
       OR day_start < day::timestamptz - interval '2 days' OR day_start > day::timestamptz + interval '2 days'
    THEN
        RAISE EXCEPTION 'partition bounds [%, %) are not one local day around %', day_start, day_end, day;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS raw.%I PARTITION OF raw.detections '
                   'FOR VALUES FROM (%L) TO (%L)',
                   'detections_' || to_char(day, 'YYYYMMDD'), day_start, day_end);
END
$fn$""",
        # Fresh planner statistics before a build; ANALYZE needs the owner on PostgreSQL 15.
        f"""CREATE OR REPLACE FUNCTION {ANALYZE_FUNCTION}
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
{analyze}
END
$fn$""",
        *(f"REVOKE ALL ON FUNCTION {f} FROM PUBLIC" for f in OWNER_FUNCTIONS),
    ]
