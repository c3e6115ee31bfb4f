"""Live alerts on every stream micro-batch: restricted_zone_entry, zone_overflow, idle, camera_down.

After a batch commits, each camera's new detections (from where the last evaluation stopped, minus a
lookback that covers the longest min_duration_seconds) are read back from raw.detections and the rules
are evaluated on them, vectorised in polars. State lives in the warehouse: the detections themselves,
ops.alerts (an alert still holding is extended, one that cleared is auto-resolved) and
ops.live_alert_state (how far each camera was evaluated), committed in one transaction. A crash between the
batch and its evaluation is caught up by the next evaluation (or at start), and deterministic ids plus
matching by rule, subject and overlapping time make any re-evaluation a no-op.

Times are the detections' own (event time): `now` for a camera is its watermark, and a camera is down
when its detections stop for min_duration_seconds while other cameras' continue. Occupancy per zone (people
present, active, idle; a person unseen for less than the session gap still counts) is published retained
to `<prefix>/<camera>/<zone>/occupancy` on MQTT channels with `occupancy: true`, when it changes.

Alerts about a person carry its track_id; visitor_id stays null here: the visitor (linked track fragments,
analytics.track_links) is built with the marts, and the day's batch evaluation (`ingestion.alerts.batch`)
fills it in when it matches the live alert.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from ingestion.alerts.batch import subject_for
from ingestion.alerts.rules import Rule
from ingestion.alerts.store import Candidate, Outcome, config_of, record, utc
from ingestion.site import Site, Zone
from ingestion.warehouse import Warehouse, connect

log = logging.getLogger(__name__)

LIVE_SOURCE = "live"
# DuckDB allows one open database per file and process; connections opened and closed from two threads at
# once can race on its file handle. Every alerts connection is opened and closed under this lock.
_CONNECT_LOCK = threading.Lock()


@contextmanager
def warehouse_session(url: str, site: Site) -> Iterator[Warehouse]:
    """A short-lived connection (not holding the embedded file between uses)."""
    with _CONNECT_LOCK:
        wh = connect(url, site)
    try:
        yield wh
    finally:
        with _CONNECT_LOCK:
            wh.close()


class LiveAlerts:
    """Evaluates the site's live rules against a warehouse connection; `evaluate(wh)` after each commit."""

    def __init__(self, site: Site):
        self.site = site
        self.rules = [r for r in config_of(site).rules if r.live]
        self.gap = timedelta(seconds=site.thresholds.session_gap_seconds)
        longest = max((r.min_duration_seconds for r in self.rules), default=0.0)
        self.lookback = timedelta(seconds=longest) + 2 * self.gap
        self.zones = {z.id: z for z in site.zones}
        self.occupancy_channels = [c for c in config_of(site).channels if c.type == "mqtt" and c.occupancy]
        self._published: dict[tuple[str, str], str] = {}
        self._mqtt: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        return bool(self.rules or self.occupancy_channels)

    def evaluate(self, wh: Warehouse, now: datetime | None = None) -> Outcome:
        """Evaluate every camera with detections not yet evaluated; commit alerts and state together."""
        if not self.active:
            return Outcome()
        now = now or datetime.now(UTC)
        marks = _frame_map(wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks"))
        done = _frame_map(wh.query("SELECT camera_id, evaluated_through FROM ops.live_alert_state"))
        if not marks:
            return Outcome()
        site_now = max(marks.values())
        candidates: list[Candidate] = []
        occupancy: list[pl.DataFrame] = []
        for camera, mark in marks.items():
            if camera not in self.site.camera_ids:
                continue
            if done.get(camera) is not None and done[camera] >= mark:
                continue
            lo = (done.get(camera) or mark) - self.lookback
            frame = wh.query(
                "SELECT ts, track_id, zone_id, motion_score, worker_id FROM raw.detections "
                "WHERE camera_id = {p} AND ts >= {p} AND ts <= {p} AND class_id = 0 ORDER BY ts",
                [camera, lo, mark],
            )
            if frame.height == 0:
                continue
            frame = frame.with_columns(
                pl.col("ts").dt.replace_time_zone(None).dt.replace_time_zone("UTC")
                if frame["ts"].dtype.time_zone is None
                else pl.col("ts").dt.convert_time_zone("UTC")
            )
            candidates += self._camera_candidates(camera, frame, mark)
            if self.occupancy_channels:
                occupancy.append(self._occupancy(camera, frame, mark))
        candidates += self._camera_down(marks, site_now)
        with wh._transaction():  # noqa: SLF001 - alerts and the evaluation state commit together
            outcome = record(wh, self.site, candidates, LIVE_SOURCE, now=now)
            for camera, mark in marks.items():
                if done.get(camera) is None or done[camera] < mark:
                    wh.query(
                        "INSERT INTO ops.live_alert_state (camera_id, evaluated_through, updated_at) "
                        "VALUES ({p}, {p}, {p}) ON CONFLICT (camera_id) DO UPDATE SET "
                        "evaluated_through = excluded.evaluated_through, "
                        "updated_at = excluded.updated_at",
                        [camera, mark, now],
                    )
        if occupancy:
            self._publish_occupancy(pl.concat(occupancy))
        return outcome

    # --- rules ----------------------------------------------------------------------------------------

    def _camera_candidates(self, camera: str, frame: pl.DataFrame, mark: datetime) -> list[Candidate]:
        out: list[Candidate] = []
        for rule in self.rules:
            zones = [z for z in self.site.zones_for(camera) if rule.covers(camera, z)]
            if rule.type == "camera_down" or not zones:
                continue
            in_scope = frame.filter(pl.col("zone_id").is_in([z.id for z in zones]))
            if in_scope.height == 0:
                continue
            if rule.type == "restricted_zone_entry":
                out += self._visits(rule, camera, in_scope, mark)
            elif rule.type == "idle":
                out += self._idle(rule, camera, in_scope, mark)
            elif rule.type == "zone_overflow":
                out += self._overflow(rule, camera, frame, zones, mark)
        return out

    def _runs(self, frame: pl.DataFrame, keys: list[str], flag: pl.Expr, mark: datetime) -> pl.DataFrame:
        """Runs of rows where `flag` holds, per key, split by a row where it does not or a gap longer than
        the session gap: key columns, start, last, ended (a later row of the key exists, or the run's last
        row is older than the watermark minus the gap), rows, worker_id."""
        gap_us = int(self.gap.total_seconds() * 1_000_000)
        f = (
            frame.sort([*keys, "ts"])
            .with_columns(_flag=flag)
            .with_columns(
                _brk=(
                    (pl.col("ts").diff().over(keys).dt.total_microseconds() > gap_us)
                    | (pl.col("_flag") != pl.col("_flag").shift().over(keys))
                ).fill_null(True),
                _key_last=pl.col("ts").max().over(keys),
            )
            .with_columns(_run=pl.col("_brk").cum_sum().over(keys))
        )
        runs = (
            f.filter(pl.col("_flag"))
            .group_by([*keys, "_run"])
            .agg(
                start=pl.col("ts").min(),
                last=pl.col("ts").max(),
                rows=pl.len(),
                key_last=pl.col("_key_last").first(),
                worker_id=pl.col("worker_id").drop_nulls().first(),
                min_motion=pl.col("motion_score").min(),
            )
        )
        return runs.with_columns(
            ended=(pl.col("key_last") > pl.col("last")) | (pl.col("last") < mark - self.gap)
        ).sort("start")

    def _visits(self, rule: Rule, camera: str, frame: pl.DataFrame, mark: datetime) -> list[Candidate]:
        def describe(r: dict, seconds: float, zone: Zone) -> tuple[str, dict]:
            message = f"Track {r['track_id']} entered restricted zone {zone.name} ({zone.id})"
            return message, {"seconds": round(seconds, 3)}

        return self._track_run_candidates(rule, camera, frame, pl.lit(True), mark, describe)

    def _idle(self, rule: Rule, camera: str, frame: pl.DataFrame, mark: datetime) -> list[Candidate]:
        limit = rule.threshold if rule.threshold is not None else self.site.thresholds.idle_motion_score

        def describe(r: dict, seconds: float, zone: Zone) -> tuple[str, dict]:
            message = f"Track {r['track_id']} idle for {seconds:.0f} s in {zone.name} ({zone.id})"
            metadata = {
                "idle_seconds": round(seconds, 3),
                "threshold_seconds": rule.min_duration_seconds,
                "motion_below": limit,
            }
            return message, metadata

        return self._track_run_candidates(rule, camera, frame, pl.col("motion_score") < limit, mark, describe)

    def _track_run_candidates(
        self,
        rule: Rule,
        camera: str,
        frame: pl.DataFrame,
        flag: pl.Expr,
        mark: datetime,
        describe: Callable[[dict, float, Zone], tuple[str, dict]],
    ) -> list[Candidate]:
        """A candidate per run of one track in one zone where `flag` holds for at least the rule's
        min_duration_seconds; `describe(run, seconds, zone)` gives its message and metadata."""
        runs = self._runs(frame, ["zone_id", "track_id"], flag, mark)
        out = []
        for r in runs.iter_rows(named=True):
            seconds = (r["last"] - r["start"]).total_seconds()
            if seconds < rule.min_duration_seconds:
                continue
            message, metadata = describe(r, seconds, self.zones[r["zone_id"]])
            out.append(
                Candidate(
                    rule,
                    subject_for(rule.type, camera, r["zone_id"], r["track_id"]),
                    camera,
                    r["start"],
                    r["last"],
                    r["last"] if r["ended"] else None,
                    message,
                    zone_id=r["zone_id"],
                    track_id=r["track_id"],
                    worker_id=r["worker_id"],
                    metadata=metadata,
                )
            )
        return out

    def _overflow(
        self,
        rule: Rule,
        camera: str,
        frame: pl.DataFrame,
        zones: list,
        mark: datetime,
    ) -> list[Candidate]:
        frames = frame.select("ts").unique()
        limits = pl.DataFrame(
            {
                "zone_id": [z.id for z in zones],
                "limit": [
                    rule.threshold if rule.threshold is not None else float(z.max_workers) for z in zones
                ],
            }
        )
        counts = (
            frame.filter(pl.col("zone_id").is_in(limits["zone_id"].implode()))
            .group_by("zone_id", "ts")
            .agg(people=pl.col("track_id").n_unique())
        )
        grid = (
            frames.join(limits, how="cross")
            .join(counts, on=["zone_id", "ts"], how="left")
            .with_columns(
                pl.col("people").fill_null(0), worker_id=pl.lit(None, pl.String), motion_score=pl.lit(0.0)
            )
        )
        runs = self._runs(grid, ["zone_id"], pl.col("people") > pl.col("limit"), mark)
        if runs.height == 0:
            return []
        peaks = (
            grid.join(runs.select("zone_id", "start", "last"), on="zone_id")
            .filter(pl.col("ts").is_between(pl.col("start"), pl.col("last")))
            .group_by("zone_id", "start")
            .agg(max_people=pl.col("people").max())
        )
        runs = runs.join(peaks, on=["zone_id", "start"], how="left").join(limits, on="zone_id")
        out = []
        for r in runs.iter_rows(named=True):
            seconds = (r["last"] - r["start"]).total_seconds()
            if seconds < rule.min_duration_seconds:
                continue
            zone = self.zones[r["zone_id"]]
            out.append(
                Candidate(
                    rule,
                    subject_for(rule.type, camera, r["zone_id"], None),
                    camera,
                    r["start"],
                    r["last"],
                    r["last"] if r["ended"] else None,
                    f"Zone {zone.name} ({zone.id}) held up to {r['max_people']} people (max {r['limit']:g}) "
                    f"for {seconds:.0f} s",
                    zone_id=r["zone_id"],
                    metadata={
                        "max_people": r["max_people"],
                        "limit": r["limit"],
                        "seconds": round(seconds, 3),
                        "threshold_seconds": rule.min_duration_seconds,
                    },
                )
            )
        return out

    def _camera_down(self, marks: dict[str, datetime], site_now: datetime) -> list[Candidate]:
        """A camera whose detections stopped while others continue, for min_duration_seconds; it clears when
        the camera's detections resume (its watermark moves past the outage's start)."""
        out = []
        for rule in (r for r in self.rules if r.type == "camera_down"):
            for camera in self.site.camera_ids:
                mark = marks.get(camera)
                if mark is None or not rule.covers(camera, None):
                    continue
                silent = (site_now - mark).total_seconds()
                if silent >= rule.min_duration_seconds:
                    out.append(
                        Candidate(
                            rule,
                            subject_for(rule.type, camera, None, None),
                            camera,
                            mark,
                            site_now,
                            None,
                            f"Camera {self.site.camera(camera).name} ({camera}) "
                            f"sent nothing for {silent:.0f} s",
                            metadata={
                                "seconds": round(silent, 3),
                                "threshold_seconds": rule.min_duration_seconds,
                            },
                        )
                    )
        return out

    def resolve_recovered(self, wh: Warehouse) -> list[str]:
        """camera_down alerts of cameras sending again (watermark past the outage start + the threshold)."""
        from ingestion.alerts.store import load_alerts, resolve_cleared

        marks = _frame_map(wh.query("SELECT camera_id, max_event_ts FROM raw.camera_watermarks"))
        open_down = load_alerts(
            wh, "WHERE alert_type = 'camera_down' AND source = {p} AND status <> 'resolved'", [LIVE_SOURCE]
        )
        back = []
        for a in open_down:
            mark = marks.get(a["camera_id"])
            if mark is not None and mark > a["started_at"]:
                a["ended_at"] = mark
                back.append(a)
        return resolve_cleared(wh, back) if back else []

    # --- occupancy -----------------------------------------------------------------------------------

    def _occupancy(self, camera: str, frame: pl.DataFrame, mark: datetime) -> pl.DataFrame:
        """Per zone of the camera: people seen within the session gap before the watermark, and of them
        those whose latest motion is at or above the idle threshold (active) or below it (idle)."""
        limit = self.site.thresholds.idle_motion_score
        recent = frame.filter((pl.col("ts") >= mark - self.gap) & pl.col("zone_id").is_not_null())
        latest = recent.sort("ts").group_by("zone_id", "track_id").agg(motion=pl.col("motion_score").last())
        per_zone = latest.group_by("zone_id").agg(present=pl.len(), active=(pl.col("motion") >= limit).sum())
        zones = pl.DataFrame(
            {"zone_id": [z.id for z in self.site.zones_for(camera)]}, schema={"zone_id": pl.String}
        )
        return zones.join(per_zone, on="zone_id", how="left").with_columns(
            pl.col("present").fill_null(0).cast(pl.Int64),
            pl.col("active").fill_null(0).cast(pl.Int64),
            camera_id=pl.lit(camera),
            ts=pl.lit(mark),
        )

    def _publish_occupancy(self, occupancy: pl.DataFrame) -> None:
        from ingestion.alerts.channels import ChannelNotConfigured, channel_settings, mqtt_client

        for channel in self.occupancy_channels:
            try:
                client = self._mqtt.get(channel.name) or mqtt_client(
                    channel, channel_settings(channel), f"sightline-occupancy-{channel.name}"
                )
            except (ChannelNotConfigured, OSError) as exc:
                log.debug("occupancy not published on %s: %s", channel.name, exc)
                continue
            self._mqtt[channel.name] = client
            for r in occupancy.iter_rows(named=True):
                body = json.dumps(
                    {
                        "present": r["present"],
                        "active": r["active"],
                        "idle": r["present"] - r["active"],
                        "ts": r["ts"].isoformat(),
                    }
                )
                state = body.split(', "ts"')[0]
                key = (channel.name, f"{r['camera_id']}/{r['zone_id']}")
                if self._published.get(key) == state:
                    continue
                client.publish(
                    f"{channel.topic_prefix}/{r['camera_id']}/{r['zone_id']}/occupancy",
                    body,
                    qos=1,
                    retain=True,
                )
                self._published[key] = state

    def close(self) -> None:
        for client in self._mqtt.values():
            client.loop_stop()
            client.disconnect()
        self._mqtt.clear()


def _frame_map(frame: pl.DataFrame) -> dict[str, datetime]:
    if frame.height == 0:
        return {}
    key, value = frame.columns
    return {r[key]: utc(r[value]) for r in frame.to_dicts()}


class StreamAlerts:
    """The stream consumer's after-commit hook: evaluate live rules on the lander's connection, then wake
    the delivery thread. Errors are logged, never raised: alerts must not stop the landing of data."""

    def __init__(self, url: str, site: Site, lander: Any, *, deliver: bool = True):
        from ingestion.alerts.deliver import DeliveryThread

        self.site, self.lander = site, lander
        self.live = LiveAlerts(site)
        self.delivery = DeliveryThread(url, site) if deliver and config_of(site).channels else None
        self._started = False

    def start(self) -> None:
        """Start delivering (at once: a restart owes what the previous run raised but did not send)."""
        if self.delivery and not self._started:
            self.delivery.start()
        self._started = True

    def __call__(self, messages: list, outcome: Any, committed: float) -> None:
        self.start()
        try:
            wh = self.lander.open()
            result = self.live.evaluate(wh)
            resolved = self.live.resolve_recovered(wh) if self.live.rules else []
            if result.raised or result.auto_resolved or resolved:
                log.info(
                    "live alerts: %d raised, %d auto-resolved",
                    len(result.raised),
                    len(result.auto_resolved) + len(resolved),
                )
                if self.delivery:
                    self.delivery.wake()
        except Exception:  # noqa: BLE001 - logged; the next batch evaluates again from the saved state
            log.exception("live alert evaluation failed; landing continues")

    def close(self) -> None:
        if self.delivery and self._started:
            self.delivery.stop()
        self.live.close()
