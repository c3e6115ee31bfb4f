"""Deliver what is pending, exactly once per alert, channel and event; the ledger is ops.alert_deliveries.

What is owed: for each alert to notify (not raised in quiet hours, created within `horizon`), each channel
of its rule, and each event that channel takes: `new`, then `acknowledged` once someone acknowledged it,
then `resolved`. An event is done once a `sent` (or `gave_up`) row exists for it, so retries, restarts
and rebuilds of the marts (which keep alert ids) send nothing twice.

Each try is claimed before it is made: the attempt row (status `sending`) is committed first, and its
primary key (alert, channel, event, attempt) lets only one deliverer (stream thread, Dagster sensor, CLI)
make that try. A failure is recorded with `next_attempt_at` (retry_seconds x 2^(attempt-1)); after
`max_attempts` the event is given up. A try left `sending` by a crash is counted failed after a grace period
and retried: the one case where a receiver may see a repeat, which the webhook's Idempotency-Key and the
e-mail's Message-ID let it recognise. Each channel sends at most `rate_limit_per_minute` tries a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingestion.alerts.channels import (
    ChannelNotConfigured,
    ChannelSettings,
    SendResult,
    channel_settings,
    send,
)
from ingestion.alerts.rules import Channel
from ingestion.alerts.store import config_of, load_alerts, utc
from ingestion.site import Site
from ingestion.warehouse import Warehouse

log = logging.getLogger(__name__)

HORIZON = timedelta(days=1)  # alerts raised longer ago than this are not notified any more
POLL_SECONDS = 10.0
# A `sending` row older than this (plus the channel timeout) died with its process.
STALE_SENDING = timedelta(seconds=60)


@dataclass
class DeliveryReport:
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (alert_id, channel, event)
    failed: list[tuple[str, str, str, str]] = field(default_factory=list)  # ... and the error
    gave_up: list[tuple[str, str, str]] = field(default_factory=list)
    not_configured: set[str] = field(default_factory=set)  # channels whose env variable is unset
    rate_limited: set[str] = field(default_factory=set)
    waiting: int = 0  # events due later (backoff) or held back by the rate limit

    @property
    def pending(self) -> bool:
        return bool(self.waiting)


def deliver_pending(
    wh: Warehouse,
    site: Site,
    *,
    now: datetime | None = None,
    horizon: timedelta = HORIZON,
    channels: set[str] | None = None,
) -> DeliveryReport:
    """One pass: send every event that is due, record each try. `channels` limits it to those names."""
    config = config_of(site)
    report = DeliveryReport()
    now = now or datetime.now(UTC)
    rules = {r.name: r for r in config.rules}
    alerts = [
        a
        for a in load_alerts(wh, "WHERE notify AND created_at >= {p}", [now - horizon])
        if a["rule_name"] in rules
    ]
    if not alerts:
        return report
    ledger = _ledger(wh, [a["alert_id"] for a in alerts])
    recent = _recent_tries(wh, now)
    for alert in alerts:
        for name in rules[alert["rule_name"]].channels:
            if channels is not None and name not in channels:
                continue
            channel = config.channel(name)
            for event in _owed_events(alert, channel):
                tries = ledger.get((alert["alert_id"], name, event), [])
                state = _state(tries, channel, now)
                if state == "done":
                    continue
                if name in report.not_configured:
                    break
                if state != "due":  # later events wait for this one (an `end` never precedes its `new`)
                    report.waiting += state == "backoff"  # `busy`: another deliverer is trying it now
                    break
                try:  # resolved once, before the claim: an unconfigured channel leaves no ledger row
                    settings = channel_settings(channel)
                except ChannelNotConfigured:
                    report.not_configured.add(name)
                    break
                if recent[name] >= channel.rate_limit_per_minute:
                    report.rate_limited.add(name)
                    report.waiting += 1
                    break
                attempt = max((t["attempt"] for t in tries), default=0) + 1
                if not _claim(wh, alert["alert_id"], name, event, attempt, now):
                    break  # another deliverer took this try
                recent[name] += 1
                outcome = _try(channel, settings, alert, event, site)
                done = _record(wh, alert["alert_id"], name, event, attempt, outcome, channel)
                key = (alert["alert_id"], name, event)
                if outcome.ok:
                    report.sent.append(key)
                    continue
                (
                    report.gave_up.append(key)
                    if done == "gave_up"
                    else report.failed.append((*key, outcome.error or ""))
                )
                report.waiting += done != "gave_up"
                break
    for name in report.not_configured:
        log.warning("alert channel %s is not configured (its environment variable is unset): skipped", name)
    return report


def _owed_events(alert: dict[str, Any], channel: Channel) -> list[str]:
    owed = ["new"]
    if alert["acknowledged_at"] is not None:
        owed.append("acknowledged")
    if alert["status"] == "resolved":
        owed.append("resolved")
    return [e for e in owed if e in channel.events]


def _state(tries: list[dict[str, Any]], channel: Channel, now: datetime) -> str:
    """done | due | busy (a live try) | backoff."""
    if any(t["status"] in ("sent", "gave_up") for t in tries):
        return "done"
    if not tries:
        return "due"
    last = max(tries, key=lambda t: t["attempt"])
    if last["status"] == "sending":
        stale = last["started_at"] + STALE_SENDING + timedelta(seconds=channel.timeout_seconds)
        if now < stale:
            return "busy"
        return "due" if last["attempt"] < channel.max_attempts else "done"
    return "due" if last["next_attempt_at"] is None or last["next_attempt_at"] <= now else "backoff"


def _ledger(wh: Warehouse, ids: list[str]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        frame = wh.query(
            "SELECT alert_id, channel, event, attempt, status, started_at, next_attempt_at "
            f"FROM ops.alert_deliveries WHERE alert_id IN ({', '.join(['{p}'] * len(chunk))})",
            chunk,
        )
        for row in frame.to_dicts() if frame.height else []:
            row["started_at"], row["next_attempt_at"] = utc(row["started_at"]), utc(row["next_attempt_at"])
            out[(row["alert_id"], row["channel"], row["event"])].append(row)
    return out


def _recent_tries(wh: Warehouse, now: datetime) -> dict[str, int]:
    frame = wh.query(
        "SELECT channel, COUNT(*) AS n FROM ops.alert_deliveries WHERE started_at > {p} GROUP BY channel",
        [now - timedelta(minutes=1)],
    )
    counts: dict[str, int] = defaultdict(int)
    for row in frame.to_dicts() if frame.height else []:
        counts[row["channel"]] = int(row["n"])
    return counts


def _claim(wh: Warehouse, alert_id: str, channel: str, event: str, attempt: int, now: datetime) -> bool:
    before = wh.query(
        "SELECT COUNT(*) AS n FROM ops.alert_deliveries WHERE alert_id = {p} AND channel = {p} "
        "AND event = {p} AND attempt = {p}",
        [alert_id, channel, event, attempt],
    )
    if before["n"][0]:
        return False
    try:
        wh.query(
            "INSERT INTO ops.alert_deliveries (alert_id, channel, event, attempt, status, started_at) "
            "VALUES ({p}, {p}, {p}, {p}, 'sending', {p})",
            [alert_id, channel, event, attempt, now],
        )
    except Exception as exc:  # noqa: BLE001 - a unique violation: another deliverer claimed it first
        text = str(exc).lower()
        if "unique" in text or "duplicate" in text or "constraint" in text:
            return False
        raise
    return True


def _try(
    channel: Channel, settings: ChannelSettings, alert: dict[str, Any], event: str, site: Site
) -> SendResult:
    before = None
    if event != "new":  # Frigate's `before`: the alert as it was when the previous event went out
        before = {**alert, "status": "open" if event == "acknowledged" else alert["status"]}
        if event == "acknowledged":
            before.update(acknowledged_by=None, acknowledged_at=None, action_taken=None)
        else:
            before.update(
                status="acknowledged" if alert["acknowledged_at"] else "open",
                resolved_by=None,
                resolved_at=None,
            )
    try:
        return send(channel, settings, alert, event, site, before)
    except Exception as exc:  # noqa: BLE001 - any failure of one channel is a failed try, recorded
        return SendResult(False, None, f"{type(exc).__name__}: {exc}")


def _record(
    wh: Warehouse, alert_id: str, channel: str, event: str, attempt: int, outcome: SendResult, spec: Channel
) -> str:
    now = datetime.now(UTC)
    if outcome.ok:
        status, next_at = "sent", None
    elif attempt >= spec.max_attempts:
        status, next_at = "gave_up", None
    else:
        status, next_at = "failed", now + timedelta(seconds=spec.retry_seconds * 2 ** (attempt - 1))
    wh.query(
        "UPDATE ops.alert_deliveries SET status = {p}, response_code = {p}, error = {p}, sent_at = {p}, "
        "next_attempt_at = {p} WHERE alert_id = {p} AND channel = {p} AND event = {p} AND attempt = {p}",
        [
            status,
            outcome.code,
            (outcome.error or "")[:500] or None,
            now if outcome.ok else None,
            next_at,
            alert_id,
            channel,
            event,
            attempt,
        ],
    )
    if status != "sent":
        log.warning(
            "alert %s -> %s (%s) attempt %d %s: %s",
            alert_id[:10],
            channel,
            event,
            attempt,
            status,
            outcome.error,
        )
    return status


class DeliveryThread:
    """Delivers in the background of the stream consumer: woken after each batch that raised or changed
    an alert, and every `interval` seconds while retries are waiting. Opens its own warehouse connection
    per pass (the embedded DuckDB file is not held between passes)."""

    def __init__(self, url: str, site: Site, *, interval: float = 0.5):
        self.url, self.site, self.interval = url, site, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sightline-alert-delivery", daemon=True)
        self.passes = 0

    def start(self) -> DeliveryThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from ingestion.alerts.live import warehouse_session

        waiting = True  # a restart owes what the last run left pending
        last_pass, failures = 0.0, 0
        while not self._stop.is_set():
            woken = self._wake.wait(self.interval)
            # Besides wake-ups and retries, a pass every POLL_SECONDS picks up acknowledgements made
            # elsewhere.
            if not (woken or waiting or time.monotonic() - last_pass >= POLL_SECONDS):
                continue
            self._wake.clear()
            last_pass = time.monotonic()
            try:
                with warehouse_session(self.url, self.site) as wh:
                    report = deliver_pending(wh, self.site)
                self.passes += 1
                waiting = report.pending
                failures = 0
            except Exception as exc:  # noqa: BLE001 - delivery must never take the stream down; retried
                failures += 1
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning(
                    "alert delivery pass failed (%s); retrying",
                    first_line,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                waiting = True
                self._stop.wait(min(self.interval * 2**failures, 10.0))  # the warehouse may be down
