"""ops.alerts: raise, match, update, acknowledge and resolve alerts so that no rebuild loses or doubles one.

An alert's id is md5(rule | subject | start): re-evaluating the same condition gives the same id. A condition
seen again (a later micro-batch, the day's marts after the stream saw it live) is matched to the alert
already holding it by rule, subject and overlapping time, and only extends that alert's times: status,
acknowledgement, action taken and resolution are written by people (`sightline alerts ack|resolve`) or by
auto-resolution, never by re-evaluation. Candidates are matched one by one in Python (alerts are not per
detection), but a noisy day raises thousands: new alerts are inserted in multi-row statements.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from ingestion.alerts.rules import AlertsConfig, Rule
from ingestion.site import Site
from ingestion.warehouse import Warehouse
from ingestion.warehouse.ddl import ALERTS

log = logging.getLogger(__name__)

STATUSES = ("open", "acknowledged", "resolved")
SYSTEM_USER = "sightline"  # resolved_by of auto-resolved alerts


def alert_id(rule: str, subject: str, start: datetime) -> str:
    """Deterministic: the same rule, subject and start give the same id on every run and backend."""
    us = (
        int(start.astimezone(UTC).timestamp() * 1_000_000)
        if start.tzinfo
        else int(start.replace(tzinfo=UTC).timestamp() * 1_000_000)
    )
    return hashlib.md5(f"{rule}|{subject}|{us}".encode()).hexdigest()  # noqa: S324 - an id, not security


@dataclass
class Candidate:
    """A condition a rule found: raised as a new alert, or merged into the one already holding it."""

    rule: Rule
    subject: str
    camera_id: str | None
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None  # None: still holds
    message: str
    zone_id: str | None = None
    track_id: int | None = None
    visitor_id: str | None = None
    worker_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    raised: list[str] = field(default_factory=list)  # new alert ids
    matched: list[str] = field(default_factory=list)  # existing alerts holding a candidate's condition
    updated: list[str] = field(default_factory=list)  # ...of which the candidate changed the times
    auto_resolved: list[str] = field(default_factory=list)
    suppressed: int = 0  # skipped: outside the rule's schedule, or within its cooldown


def config_of(site: Site) -> AlertsConfig:
    return site.alerts or AlertsConfig()


def utc(ts: datetime | None) -> datetime | None:
    """An aware UTC datetime (drivers return naive UTC or aware values depending on the backend)."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def load_alerts(wh: Warehouse, where: str = "", params: list | None = None) -> list[dict[str, Any]]:
    """Rows of ops.alerts as dicts (timestamps aware UTC), oldest first."""
    frame = wh.query(f"SELECT * FROM ops.alerts {where} ORDER BY started_at, alert_id", params or [])
    rows = frame.to_dicts() if frame.height else []
    for r in rows:
        for k, value in r.items():
            if isinstance(value, datetime):
                r[k] = utc(value)
    return rows


def record(
    wh: Warehouse,
    site: Site,
    candidates: list[Candidate],
    source: str,
    *,
    gap: timedelta | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Raise new alerts and extend matching ones, in one transaction. `gap`: two sightings of a condition
    this close are one alert (default: the site's session gap)."""
    out = Outcome()
    if not candidates:
        return out
    gap = gap if gap is not None else timedelta(seconds=site.thresholds.session_gap_seconds)
    now = now or datetime.now(UTC)
    lo = min(c.started_at for c in candidates)
    cooldown = max(c.rule.cooldown_seconds for c in candidates)
    rules = sorted({c.rule.name for c in candidates})
    p = "{p}"
    existing = load_alerts(
        wh,
        f"WHERE rule_name IN ({', '.join([p] * len(rules))}) AND COALESCE(ended_at, last_seen_at) >= {p}",
        [*rules, lo - gap - timedelta(seconds=cooldown)],
    )
    by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in existing:
        by_subject.setdefault((a["rule_name"], a["subject"]), []).append(a)
    # New alerts are inserted together at the end (a day of noisy tracks raises thousands): until then a
    # later candidate that matches one of them extends or resolves the row in memory.
    new_rows: dict[str, dict[str, Any]] = {}
    with wh._transaction():  # noqa: SLF001 - the warehouse's own transaction helper, shared by both backends
        for c in sorted(candidates, key=lambda c: c.started_at):
            known = by_subject.setdefault((c.rule.name, c.subject), [])
            end = c.ended_at or c.last_seen_at
            match = next(
                (
                    a
                    for a in known
                    if a["started_at"] <= end + gap
                    and (a["ended_at"] or a["last_seen_at"]) >= c.started_at - gap
                ),
                None,
            )
            if match is not None:
                stored = match["alert_id"] not in new_rows
                out.matched.append(match["alert_id"])
                if _extend(match, c):
                    out.updated.append(match["alert_id"])
                    if stored:
                        _write_extension(wh, match, now)
                if match["status"] != "resolved" and match["ended_at"] is not None:
                    if stored:
                        _auto_resolve(wh, match, now)
                    else:  # inserted below as it is
                        _mark_auto_resolved(match, now)
                    out.auto_resolved.append(match["alert_id"])
                continue
            if c.rule.schedule and not c.rule.schedule.contains(c.started_at.astimezone(site.tz)):
                out.suppressed += 1
                continue
            recent = [
                a
                for a in known
                if a["started_at"] <= c.started_at
                and (a["ended_at"] or a["last_seen_at"]) + timedelta(seconds=c.rule.cooldown_seconds)
                > c.started_at
            ]
            if recent and c.rule.cooldown_seconds > 0:
                out.suppressed += 1
                continue
            row = _new_row(site, c, source, now)
            new_rows[row["alert_id"]] = row
            known.append(row)
            out.raised.append(row["alert_id"])
            if row["ended_at"] is not None:
                _mark_auto_resolved(row, now)
                out.auto_resolved.append(row["alert_id"])
        _insert(wh, list(new_rows.values()))
    return out


def _new_row(site: Site, c: Candidate, source: str, now: datetime) -> dict[str, Any]:
    quiet = bool(c.rule.quiet_hours and c.rule.quiet_hours.contains(c.started_at.astimezone(site.tz)))
    row = {
        "alert_id": alert_id(c.rule.name, c.subject, c.started_at),
        "rule_name": c.rule.name,
        "alert_type": c.rule.type,
        "severity": c.rule.severity,
        "subject": c.subject,
        "camera_id": c.camera_id,
        "zone_id": c.zone_id,
        "track_id": c.track_id,
        "visitor_id": c.visitor_id,
        "worker_id": c.worker_id,
        "message": c.message,
        "started_at": c.started_at,
        "last_seen_at": max(c.last_seen_at, c.started_at),
        "ended_at": c.ended_at,
        "status": "open",
        "acknowledged_by": None,
        "acknowledged_at": None,
        "action_taken": None,
        "resolved_by": None,
        "resolved_at": None,
        "auto_resolved": False,
        "source": source,
        "notify": not quiet,
        "metadata": json.dumps({**c.metadata, **({"quiet_hours": True} if quiet else {})}, sort_keys=True),
        "created_at": now,
        "updated_at": now,
    }
    return row


# Rows per INSERT: PostgreSQL takes at most 65,535 parameters in one statement (26 columns each here).
INSERT_CHUNK_ROWS = 1000


def _insert(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT per chunk. An id already stored is matched by record() before it gets here (same
    rule, subject and start), so DO NOTHING only guards against a concurrent writer."""
    cols = list(ALERTS.column_names)
    values = f"({', '.join(['{p}'] * len(cols))})"
    for i in range(0, len(rows), INSERT_CHUNK_ROWS):
        chunk = rows[i : i + INSERT_CHUNK_ROWS]
        wh.query(
            f"INSERT INTO ops.alerts ({', '.join(cols)}) VALUES {', '.join([values] * len(chunk))} "
            "ON CONFLICT (alert_id) DO NOTHING",
            [row[k] for row in chunk for k in cols],
        )


def _extend(alert: dict[str, Any], c: Candidate) -> bool:
    """Widen the alert's times to cover the candidate; the message and measurements follow the latest view.
    Who it concerns is filled in when the alert did not know it (a live alert has the track only; the
    batch evaluation knows the visitor and worker), never changed once set. Changes the alert dict only
    (`_write_extension` stores it); returns whether anything changed."""
    last_seen = max(alert["last_seen_at"], c.last_seen_at)
    visitor_id = alert.get("visitor_id") or c.visitor_id
    worker_id = alert.get("worker_id") or c.worker_id
    # The latest sighting decides whether the condition still holds.
    ended = c.ended_at if c.last_seen_at >= alert["last_seen_at"] else alert["ended_at"]
    metadata = json.dumps({**json.loads(alert["metadata"] or "{}"), **c.metadata}, sort_keys=True)
    new = (last_seen, ended, metadata, visitor_id, worker_id)
    if new == (
        alert["last_seen_at"],
        alert["ended_at"],
        alert["metadata"],
        alert.get("visitor_id"),
        alert.get("worker_id"),
    ):
        return False
    alert.update(
        last_seen_at=last_seen, ended_at=ended, metadata=metadata, visitor_id=visitor_id, worker_id=worker_id
    )
    return True


def _write_extension(wh: Warehouse, alert: dict[str, Any], now: datetime) -> None:
    wh.query(
        "UPDATE ops.alerts SET last_seen_at = {p}, ended_at = {p}, metadata = {p}, visitor_id = {p}, "
        "worker_id = {p}, updated_at = {p} WHERE alert_id = {p}",
        [
            alert["last_seen_at"],
            alert["ended_at"],
            alert["metadata"],
            alert["visitor_id"],
            alert["worker_id"],
            now,
            alert["alert_id"],
        ],
    )


def _auto_resolve(wh: Warehouse, alert: dict[str, Any], now: datetime) -> None:
    """The condition of a stored alert cleared: resolved, keeping who acknowledged it and what they wrote."""
    wh.query(
        "UPDATE ops.alerts SET status = 'resolved', auto_resolved = TRUE, resolved_by = {p}, "
        "resolved_at = {p}, updated_at = {p} WHERE alert_id = {p} AND status <> 'resolved'",
        [SYSTEM_USER, alert["ended_at"] or now, now, alert["alert_id"]],
    )
    _mark_auto_resolved(alert, now)


def _mark_auto_resolved(alert: dict[str, Any], now: datetime) -> None:
    """The alert's row resolved by the system (in memory; stored by the caller or by `_auto_resolve`)."""
    alert.update(
        status="resolved", auto_resolved=True, resolved_by=SYSTEM_USER, resolved_at=alert["ended_at"] or now
    )


def resolve_cleared(wh: Warehouse, alerts: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """Auto-resolve these alerts (whose conditions the caller found cleared at their ended_at)."""
    now = now or datetime.now(UTC)
    done = []
    with wh._transaction():  # noqa: SLF001
        for a in alerts:
            if a["status"] == "resolved":
                continue
            if a["ended_at"] is None:
                a["ended_at"] = a["last_seen_at"]
                wh.query(
                    "UPDATE ops.alerts SET ended_at = {p} WHERE alert_id = {p}",
                    [a["ended_at"], a["alert_id"]],
                )
            _auto_resolve(wh, a, now)
            done.append(a["alert_id"])
    return done


def get(wh: Warehouse, alert_id_or_prefix: str) -> dict[str, Any]:
    """One alert by id or unique id prefix (at least 6 characters), else a clear error."""
    key = alert_id_or_prefix.strip().lower()
    if len(key) < 6:
        raise ValueError(
            f"alert id {alert_id_or_prefix!r} is too short: give at least 6 characters "
            "(see `sightline alerts list`)"
        )
    rows = load_alerts(wh, "WHERE alert_id LIKE {p}", [key.replace("%", "").replace("_", "") + "%"])
    if len(rows) != 1:
        raise ValueError(
            f"{'no' if not rows else len(rows)} alerts match id {alert_id_or_prefix!r}: "
            f"{'check it with `sightline alerts list`' if not rows else 'give more characters'}"
        )
    return rows[0]


def acknowledge(
    wh: Warehouse, alert_id_or_prefix: str, by: str, action: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """open -> acknowledged (by whom, when, what was done). A resolved alert only gets the note."""
    if not by or not by.strip():
        raise ValueError("say who acknowledges: --by NAME")
    a = get(wh, alert_id_or_prefix)
    now = now or datetime.now(UTC)
    status = "acknowledged" if a["status"] == "open" else a["status"]
    action_taken = action if action is not None else a["action_taken"]
    wh.query(
        "UPDATE ops.alerts SET status = {p}, acknowledged_by = COALESCE(acknowledged_by, {p}), "
        "acknowledged_at = COALESCE(acknowledged_at, {p}), action_taken = {p}, updated_at = {p} "
        "WHERE alert_id = {p}",
        [status, by, now, action_taken, now, a["alert_id"]],
    )
    return get(wh, a["alert_id"])


def resolve(
    wh: Warehouse, alert_id_or_prefix: str, by: str, action: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """-> resolved by a person (auto_resolved stays false)."""
    if not by or not by.strip():
        raise ValueError("say who resolves: --by NAME")
    a = get(wh, alert_id_or_prefix)
    if a["status"] == "resolved":
        raise ValueError(
            f"alert {a['alert_id']} is already resolved (by {a['resolved_by']} at "
            f"{a['resolved_at']:%Y-%m-%d %H:%M:%S} UTC)"
        )
    now = now or datetime.now(UTC)
    wh.query(
        "UPDATE ops.alerts SET status = 'resolved', auto_resolved = FALSE, resolved_by = {p}, "
        "resolved_at = {p}, action_taken = COALESCE({p}, action_taken), updated_at = {p} "
        "WHERE alert_id = {p}",
        [by, now, action, now, a["alert_id"]],
    )
    return get(wh, a["alert_id"])


def list_alerts(wh: Warehouse, status: str | None = None, since: datetime | None = None) -> pl.DataFrame:
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use {', '.join(STATUSES)}")
    where, params = [], []
    if status:
        where.append("status = {p}")
        params.append(status)
    if since:
        where.append("started_at >= {p}")
        params.append(utc(since))
    sql = (
        "SELECT alert_id, status, severity, alert_type, rule_name, camera_id, zone_id, track_id, message, "
        "started_at, ended_at, acknowledged_by, action_taken, resolved_by, auto_resolved, source "
        "FROM ops.alerts"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY started_at, alert_id"
    )
    return wh.query(sql, params)
