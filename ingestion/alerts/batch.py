"""The day's anomalies (analytics.anomalies) and productivity drops (analytics.index_records) become alerts.

Run after the marts of a day are built (`sightline alerts evaluate --date D`, the Dagster asset
`alerts` downstream of the marts). A condition the stream already raised live is the same alert (matched
by rule, subject and overlapping time in `store.record`); rebuilding the marts and evaluating again
matches every alert to itself, so nothing is raised, changed or sent twice. A batch alert whose anomaly
is gone after a rebuild (the data changed) has cleared and is auto-resolved.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ingestion.alerts.rules import ANOMALY_TYPES, Rule
from ingestion.alerts.store import Candidate, Outcome, config_of, load_alerts, record, resolve_cleared, utc
from ingestion.site import Site, Zone
from ingestion.warehouse import Warehouse

BATCH_SOURCE = "batch"
TRAILING_WORKDAYS = 7  # productivity_drop: the same block's median over this many earlier workdays


def subject_for(
    rule_type: str,
    camera_id: str | None,
    zone_id: str | None,
    track_id: int | None,
    index_number: int | None = None,
) -> str:
    """The subject string the live and batch paths share, so they match the same alert."""
    if rule_type in ("idle", "restricted_zone_entry", "after_hours_presence"):
        return f"{camera_id}/{zone_id}/track {track_id}"
    if rule_type in ("zone_overflow", "zone_empty"):
        return f"{camera_id}/{zone_id}"
    if rule_type == "productivity_drop":
        return f"index {index_number}"
    return str(camera_id)


def visitor_key(visitor_id: int | None) -> str | None:
    """ops.alerts.visitor_id: analytics.sessions.visitor_id as text (with the alert's camera_id it names the
    person: the track fragments linked by analytics.track_links). Only this batch path knows it: linking
    runs with the marts, so a live alert (which sees raw tracks) gets it when the day's evaluation matches
    it."""
    return None if visitor_id is None else str(visitor_id)


@dataclass(frozen=True)
class EvaluateResult:
    day: date
    anomalies: int
    outcome: Outcome
    cleared: list[str]


def evaluate_day(wh: Warehouse, site: Site, day: date, now: datetime | None = None) -> EvaluateResult:
    """Raise, extend and auto-resolve the alerts of one site-local day from its built marts."""
    now = now or datetime.now(UTC)
    rules = [r for r in config_of(site).rules if r.type in ANOMALY_TYPES or r.type == "productivity_drop"]
    lo, hi = site.day_window(day)
    anomalies = wh.query(  # the session (when there is one) says who: its visitor, and worker when known
        "SELECT a.anomaly_type, a.ts, a.ts_end, a.camera_id, a.zone_id, a.track_id, a.description, "
        "CAST(a.metadata AS VARCHAR) AS metadata, s.worker_id, s.visitor_id FROM analytics.anomalies AS a "
        "LEFT JOIN analytics.sessions AS s ON s.session_id = a.session_id "
        "WHERE a.ts >= {p} AND a.ts < {p} ORDER BY a.ts, a.anomaly_id",
        [lo, hi],
    )
    rows = anomalies.to_dicts() if anomalies.height else []
    watermarks = _watermarks(wh)
    gap = timedelta(seconds=site.thresholds.session_gap_seconds)
    zones = {z.id: z for z in site.zones}
    candidates: list[Candidate] = []
    for rule in rules:
        if rule.type == "productivity_drop":
            candidates += _productivity_drops(wh, site, rule, day)
            continue
        kind = ANOMALY_TYPES[rule.type]
        for a in rows:
            if a["anomaly_type"] != kind or not rule.covers(a["camera_id"], zones.get(a["zone_id"] or "")):
                continue
            if rule.threshold is not None and not _beyond_threshold(rule, a, zones):
                continue
            start, end = utc(a["ts"]), utc(a["ts_end"]) or utc(a["ts"])
            if (end - start).total_seconds() < rule.min_duration_seconds and rule.type not in (
                "restricted_zone_entry",
                "after_hours_presence",
                "camera_down",
            ):
                continue  # the mart applied the site threshold; a stricter rule filters further
            mark = watermarks.get(a["camera_id"])
            ended = end if mark is None or end + gap < mark else None
            candidates.append(
                Candidate(
                    rule,
                    subject_for(rule.type, a["camera_id"], a["zone_id"], a["track_id"]),
                    a["camera_id"],
                    start,
                    end,
                    ended,
                    a["description"],
                    zone_id=a["zone_id"],
                    track_id=a["track_id"],
                    worker_id=a["worker_id"],
                    visitor_id=visitor_key(a["visitor_id"]),
                    metadata={"anomaly": _json(a["metadata"])},
                )
            )
    outcome = record(wh, site, candidates, BATCH_SOURCE, now=now)
    # Batch alerts of the day that no anomaly holds any more have cleared.
    held = set(outcome.matched) | set(outcome.raised)
    names = [r.name for r in rules] or [""]
    stale = [
        a
        for a in load_alerts(
            wh,
            f"WHERE source = {{p}} AND status <> 'resolved' AND started_at >= {{p}} AND started_at < {{p}} "
            f"AND rule_name IN ({', '.join(['{p}'] * len(names))})",
            [BATCH_SOURCE, lo, hi, *names],
        )
        if a["alert_id"] not in held
    ]
    cleared = resolve_cleared(wh, stale, now)
    return EvaluateResult(day, len(rows), outcome, cleared)


def _json(text: str | None) -> Any:
    import json

    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _watermarks(wh: Warehouse) -> dict[str, datetime]:
    frame = wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks")
    return {r["camera_id"]: utc(r["max_event_ts"]) for r in frame.to_dicts()} if frame.height else {}


def _beyond_threshold(rule: Rule, anomaly: dict[str, Any], zones: dict[str, Zone]) -> bool:
    """A rule's own people threshold (overflow: more than it; empty: fewer than it) on the mart's measure."""
    meta = _json(anomaly["metadata"]) or {}
    if rule.type == "zone_overflow":
        return float(meta.get("max_people", 0)) > rule.threshold
    if rule.type == "zone_empty":
        return float(meta.get("min_people", 0)) < rule.threshold
    return True


def _productivity_drops(wh: Warehouse, site: Site, rule: Rule, day: date) -> list[Candidate]:
    """Blocks of `day` whose productivity is below (1 - threshold) x the same block's median over the
    trailing workdays that have a score."""
    share = rule.threshold if rule.threshold is not None else 0.2
    frame = wh.query(
        "SELECT date, index_number, scheduled_start, scheduled_end, productivity_score "
        "FROM analytics.index_records WHERE date <= {p} AND date >= {p} "
        "AND productivity_score IS NOT NULL ORDER BY date",
        [day, day - timedelta(days=31)],
    )
    if frame.height == 0:
        return []
    out = []
    rows = frame.to_dicts()
    for r in (r for r in rows if r["date"] == day):
        history = [
            h["productivity_score"]
            for h in rows
            if h["index_number"] == r["index_number"] and h["date"] < day
        ][-TRAILING_WORKDAYS:]
        if len(history) < 3:
            continue  # too little history to call it a drop
        median = statistics.median(history)
        if median > 0 and r["productivity_score"] < (1 - share) * median:
            start, end = utc(r["scheduled_start"]), utc(r["scheduled_end"])
            out.append(
                Candidate(
                    rule,
                    subject_for(rule.type, None, None, None, r["index_number"]),
                    None,
                    start,
                    end,
                    end,
                    f"Index block {r['index_number']} productivity {r['productivity_score']:.0%} is below "
                    f"{1 - share:.0%} of its {len(history)}-workday median {median:.0%}",
                    metadata={
                        "productivity": r["productivity_score"],
                        "median": median,
                        "threshold_share": share,
                        "index_number": r["index_number"],
                    },
                )
            )
    return out
