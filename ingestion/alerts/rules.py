"""The `alerts:` section of site.yaml: channels declared once, rules that name them.

    alerts:
      channels:
        - {name: ops-webhook, type: webhook, url_env: SIGHTLINE_ALERT_WEBHOOK_URL}
      rules:
        - {name: robot-cell, type: restricted_zone_entry, zone_types: [restricted], severity: critical,
           channels: [ops-webhook]}

Validated like the rest of the site file: every error names the file, the key and the fix. Secrets (webhook
URLs, SMTP and MQTT passwords) are never in the file: a channel names the environment variable holding them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from ingestion.vocabulary import SEVERITIES, ZONE_TYPES

if TYPE_CHECKING:
    from ingestion.site import Zone, _Validator

RULE_TYPES = (
    "idle",
    "restricted_zone_entry",
    "zone_overflow",
    "zone_empty",
    "after_hours_presence",
    "camera_down",
    "productivity_drop",
)
# Decided from the detections themselves, on every stream micro-batch.
LIVE_TYPES = ("idle", "restricted_zone_entry", "zone_overflow", "camera_down")
# The anomaly mart's type (ingestion.vocabulary.ANOMALY_TYPES) for each rule type (productivity_drop is
# judged from analytics.index_records).
ANOMALY_TYPES = {
    "idle": "excessive_idle",
    "restricted_zone_entry": "restricted_zone_entry",
    "zone_overflow": "zone_overflow",
    "zone_empty": "zone_empty",
    "after_hours_presence": "after_hours_presence",
    "camera_down": "camera_down",
}
# Severity of an anomaly type no rule covers (what anomalies.sql used to hard-code).
DEFAULT_SEVERITIES = {
    "excessive_idle": "warning",
    "restricted_zone_entry": "error",
    "after_hours_presence": "warning",
    "zone_overflow": "error",
    "zone_empty": "warning",
    "camera_down": "critical",
}
# Subjects of camera-level rules carry no zone: a zone scope does not filter them.
CAMERA_LEVEL_TYPES = ("camera_down", "productivity_drop")
CHANNEL_TYPES = ("webhook", "email", "mqtt")
# Alert lifecycle events a channel can be told about (MQTT: Frigate's new / update / end).
EVENTS = ("new", "acknowledged", "resolved")
DEFAULT_EVENTS = {"webhook": ("new",), "email": ("new",), "mqtt": EVENTS}
_ENV_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class TimeWindow:
    """Days of the week and a local wall-clock range; `end <= start` crosses midnight (22:00-06:00)."""

    days: tuple[int, ...] = tuple(range(7))
    start: time = time(0)
    end: time = time(0)

    def contains(self, local: datetime) -> bool:
        """`local` is a site-local datetime. A window crossing midnight belongs to the day it starts on."""
        t, day = local.time(), local.weekday()
        if self.start == self.end:  # the whole day
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        if t >= self.start:
            return day in self.days
        return t < self.end and (day - 1) % 7 in self.days


@dataclass(frozen=True)
class Channel:
    name: str
    type: str
    events: tuple[str, ...]
    rate_limit_per_minute: int = 30
    max_attempts: int = 5
    retry_seconds: float = 2.0  # first retry after this long, doubling each time
    timeout_seconds: float = 5.0
    # webhook
    url_env: str | None = None
    # email
    host: str | None = None
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    # mqtt: `url` (mqtt://host:port, no credentials) or url_env; the password from password_env
    url: str | None = None
    topic_prefix: str = "sightline"
    occupancy: bool = False  # publish retained sightline/<camera>/<zone>/occupancy from the stream


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    severity: str
    channels: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    zone_types: tuple[str, ...] = ()
    threshold: float | None = None  # people (overflow/empty: default the zone's max/min), or a ratio
    min_duration_seconds: float = 0.0
    schedule: TimeWindow | None = None  # when the rule is active (None: always)
    quiet_hours: TimeWindow | None = None  # alerts are kept but not notified
    cooldown_seconds: float = 0.0  # no second alert for the same subject within this after the last

    @property
    def live(self) -> bool:
        return self.type in LIVE_TYPES

    def covers(self, camera_id: str, zone: Zone | None) -> bool:
        """Whether a subject on this camera (and zone) is in the rule's scope; an empty scope is all."""
        if self.cameras and camera_id not in self.cameras:
            return False
        if self.type in CAMERA_LEVEL_TYPES or zone is None:
            return self.type in CAMERA_LEVEL_TYPES or not (self.zones or self.zone_types)
        if self.zones and zone.id not in self.zones:
            return False
        return not self.zone_types or zone.type in self.zone_types


@dataclass(frozen=True)
class AlertsConfig:
    channels: tuple[Channel, ...] = ()
    rules: tuple[Rule, ...] = ()

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(
            f"unknown alert channel {name!r}; site.yaml alerts.channels has "
            f"{', '.join(c.name for c in self.channels) or 'none'}"
        )

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"unknown alert rule {name!r}")

    def anomaly_severities(self) -> dict[str, str]:
        """Severity per anomaly type for analytics.anomalies: the highest of the rules of that type, else
        the default."""
        out = dict(DEFAULT_SEVERITIES)
        chosen: dict[str, str] = {}
        for r in self.rules:
            kind = ANOMALY_TYPES.get(r.type)
            if kind and SEVERITIES.index(r.severity) >= SEVERITIES.index(chosen.get(kind, "info")):
                chosen[kind] = r.severity
        out.update(chosen)
        return out


def parse_alerts(
    doc: Any, v: _Validator, camera_ids: set[str], zones: dict[str, Zone], default_durations: dict[str, float]
) -> AlertsConfig:
    """Validate the `alerts:` mapping. `default_durations` gives min_duration_seconds per rule type when a
    rule leaves it out (the site thresholds)."""
    if doc is None:
        return AlertsConfig()
    doc = v.mapping(doc, "alerts")
    unknown = set(doc) - {"channels", "rules"}
    if unknown:
        raise v.error(
            f"alerts.{sorted(unknown)[0]}", "unknown key", "use only alerts.channels and alerts.rules"
        )
    channels = tuple(
        _channel(v, c, f"alerts.channels[{i}]")
        for i, c in enumerate(v.sequence(doc.get("channels") or [], "alerts.channels"))
    )
    v.unique([c.name for c in channels], "alerts.channels", "name")
    names = {c.name for c in channels}
    rules = tuple(
        _rule(v, r, f"alerts.rules[{i}]", names, camera_ids, zones, default_durations)
        for i, r in enumerate(v.sequence(doc.get("rules") or [], "alerts.rules"))
    )
    v.unique([r.name for r in rules], "alerts.rules", "name")
    return AlertsConfig(channels, rules)


def _keys(v: _Validator, doc: dict, key: str, allowed: set[str]) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise v.error(f"{key}.{sorted(unknown)[0]}", "unknown key", f"use only {', '.join(sorted(allowed))}")


def _env_name(v: _Validator, value: Any, key: str) -> str:
    value = v.string(value, key)
    if not _ENV_PATTERN.fullmatch(value):
        raise v.error(
            key,
            f"{value!r} is not an environment variable name",
            "name the variable that holds the secret, such as SIGHTLINE_ALERT_WEBHOOK_URL "
            "(the secret itself never goes in site.yaml)",
        )
    return value


def _channel(v: _Validator, doc: Any, key: str) -> Channel:
    doc = v.mapping(doc, key)
    name = v.ident(v.required(doc, "name", key), f"{key}.name")
    kind = v.string(v.required(doc, "type", key), f"{key}.type")
    if kind not in CHANNEL_TYPES:
        raise v.error(
            f"{key}.type", f"unknown channel type {kind!r}", f"use one of {', '.join(CHANNEL_TYPES)}"
        )
    common = {
        "name",
        "type",
        "events",
        "rate_limit_per_minute",
        "max_attempts",
        "retry_seconds",
        "timeout_seconds",
    }
    specific = {
        "webhook": {"url_env"},
        "email": {"host", "port", "starttls", "username", "password_env", "from", "to"},
        "mqtt": {"url", "url_env", "username", "password_env", "topic_prefix", "occupancy"},
    }[kind]
    for secret in ("url", "password", "webhook_url"):
        if secret in doc and secret not in specific:
            raise v.error(
                f"{key}.{secret}",
                "secrets and webhook URLs do not belong in site.yaml",
                f"put it in an environment variable and name it with `{secret.split('_')[-1]}_env`",
            )
    _keys(v, doc, key, common | specific)
    events = tuple(
        v.sequence(doc["events"], f"{key}.events", min_len=1)
        if doc.get("events") is not None
        else DEFAULT_EVENTS[kind]
    )
    for i, e in enumerate(events):
        if e not in EVENTS:
            raise v.error(f"{key}.events[{i}]", f"unknown event {e!r}", f"use {', '.join(EVENTS)}")
    kw: dict[str, Any] = {
        "rate_limit_per_minute": int(
            v.number(
                doc.get("rate_limit_per_minute", 30), f"{key}.rate_limit_per_minute", low=1, integer=True
            )
        ),
        "max_attempts": int(
            v.number(doc.get("max_attempts", 5), f"{key}.max_attempts", low=1, high=100, integer=True)
        ),
        "retry_seconds": float(v.number(doc.get("retry_seconds", 2.0), f"{key}.retry_seconds", low=0)),
        "timeout_seconds": float(
            v.number(doc.get("timeout_seconds", 5.0), f"{key}.timeout_seconds", low=0.1, high=300)
        ),
    }
    if kind == "webhook":
        kw["url_env"] = _env_name(v, v.required(doc, "url_env", key), f"{key}.url_env")
    elif kind == "email":
        kw["host"] = v.string(v.required(doc, "host", key), f"{key}.host")
        kw["port"] = int(v.number(doc.get("port", 587), f"{key}.port", low=1, high=65535, integer=True))
        kw["starttls"] = v.boolean(doc.get("starttls", True), f"{key}.starttls")
        kw["sender"] = v.string(v.required(doc, "from", key), f"{key}.from")
        to = doc.get("to")
        to = [to] if isinstance(to, str) else v.sequence(v.required(doc, "to", key), f"{key}.to", min_len=1)
        kw["to"] = tuple(v.string(t, f"{key}.to[{i}]") for i, t in enumerate(to))
        if doc.get("username") is not None:
            kw["username"] = v.string(doc["username"], f"{key}.username")
            kw["password_env"] = _env_name(v, v.required(doc, "password_env", key), f"{key}.password_env")
    else:
        if ("url" in doc) == ("url_env" in doc):
            raise v.error(
                key,
                "an mqtt channel needs exactly one of `url` and `url_env`",
                "give the broker as url: mqtt://host:1883 (or name the variable holding it)",
            )
        if "url" in doc:
            url = v.string(doc["url"], f"{key}.url")
            if not url.startswith("mqtt://") or "@" in url:
                raise v.error(
                    f"{key}.url",
                    f"{url!r} is not mqtt://host[:port] without credentials",
                    "write mqtt://host:1883; credentials go in username and password_env",
                )
            kw["url"] = url
        else:
            kw["url_env"] = _env_name(v, doc["url_env"], f"{key}.url_env")
        if doc.get("username") is not None:
            kw["username"] = v.string(doc["username"], f"{key}.username")
            kw["password_env"] = _env_name(v, v.required(doc, "password_env", key), f"{key}.password_env")
        kw["topic_prefix"] = v.string(doc.get("topic_prefix", "sightline"), f"{key}.topic_prefix")
        kw["occupancy"] = v.boolean(doc.get("occupancy", False), f"{key}.occupancy")
    return Channel(name, kind, events, **kw)


def _ids(
    v: _Validator,
    doc: dict,
    name: str,
    key: str,
    known: set[str] | tuple[str, ...],
    what: str,
) -> tuple[str, ...]:
    values = doc.get(name) or []
    values = [values] if isinstance(values, str) else v.sequence(values, f"{key}.{name}")
    for i, x in enumerate(values):
        if x not in known:
            raise v.error(
                f"{key}.{name}[{i}]",
                f"unknown {what} {x!r}",
                f"use one of {', '.join(sorted(known))} (or leave `{name}` out for all)",
            )
    return tuple(values)


def _window(v: _Validator, doc: Any, key: str) -> TimeWindow | None:
    if doc is None:
        return None
    doc = v.mapping(doc, key)
    _keys(v, doc, key, {"days", "start", "end"})
    days = tuple(range(7))
    if doc.get("days") is not None:
        listed = v.sequence(doc["days"], f"{key}.days", min_len=1)
        out = []
        for i, d in enumerate(listed):
            if not isinstance(d, str) or d.lower()[:3] not in _WEEKDAYS:
                raise v.error(f"{key}.days[{i}]", f"unknown weekday {d!r}", f"use {', '.join(_WEEKDAYS)}")
            out.append(_WEEKDAYS.index(d.lower()[:3]))
        days = tuple(sorted(set(out)))
    start = v.clock(doc.get("start", "00:00"), f"{key}.start")
    end = v.clock(doc.get("end", "00:00"), f"{key}.end")
    return TimeWindow(days, start, end)


def _rule(
    v: _Validator,
    doc: Any,
    key: str,
    channels: set[str],
    camera_ids: set[str],
    zones: dict[str, Zone],
    default_durations: dict[str, float],
) -> Rule:
    doc = v.mapping(doc, key)
    _keys(
        v,
        doc,
        key,
        {
            "name",
            "type",
            "severity",
            "channels",
            "cameras",
            "zones",
            "zone_types",
            "threshold",
            "min_duration_seconds",
            "schedule",
            "quiet_hours",
            "cooldown_seconds",
        },
    )
    name = v.ident(v.required(doc, "name", key), f"{key}.name")
    kind = v.string(v.required(doc, "type", key), f"{key}.type")
    if kind not in RULE_TYPES:
        raise v.error(f"{key}.type", f"unknown rule type {kind!r}", f"use one of {', '.join(RULE_TYPES)}")
    severity = v.string(v.required(doc, "severity", key), f"{key}.severity")
    if severity not in SEVERITIES:
        raise v.error(
            f"{key}.severity", f"unknown severity {severity!r}", f"use one of {', '.join(SEVERITIES)}"
        )
    threshold = doc.get("threshold")
    if threshold is not None:
        threshold = float(v.number(threshold, f"{key}.threshold", low=0))
        if kind == "productivity_drop" and threshold >= 1:
            raise v.error(
                f"{key}.threshold",
                f"{threshold} is not a share below 1",
                "give the drop below the trailing median as a share, e.g. 0.2 for 20 %",
            )
    duration = doc.get("min_duration_seconds")
    duration = (
        default_durations.get(kind, 0.0)
        if duration is None
        else float(v.number(duration, f"{key}.min_duration_seconds", low=0))
    )
    return Rule(
        name=name,
        type=kind,
        severity=severity,
        channels=_ids(v, doc, "channels", key, channels, "channel (declare it under alerts.channels)"),
        cameras=_ids(v, doc, "cameras", key, camera_ids, "camera"),
        zones=_ids(v, doc, "zones", key, set(zones), "zone"),
        zone_types=_ids(v, doc, "zone_types", key, ZONE_TYPES, "zone type"),
        threshold=threshold,
        min_duration_seconds=duration,
        schedule=_window(v, doc.get("schedule"), f"{key}.schedule"),
        quiet_hours=_window(v, doc.get("quiet_hours"), f"{key}.quiet_hours"),
        cooldown_seconds=float(v.number(doc.get("cooldown_seconds", 0), f"{key}.cooldown_seconds", low=0)),
    )
