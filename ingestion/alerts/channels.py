"""Send one alert event to one channel: webhook (Slack/Teams-compatible JSON), e-mail (SMTP) or MQTT.

Secrets and webhook URLs come from the environment variables the channel names; they never appear in an
error, a log line or the ledger. MQTT follows Frigate's event shape on `<prefix>/<camera>/alerts`
(`{"type": "new"|"update"|"end", "before": {...}, "after": {...}}`), so Home Assistant and Node-RED
automations written for Frigate adapt easily; acknowledgement is an `update`, resolution the `end`.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from ingestion.alerts.rules import Channel
from ingestion.site import Site


class ChannelNotConfigured(RuntimeError):
    """The environment variable the channel names is not set: it is skipped, not failed."""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    code: int | None = None  # HTTP status, SMTP reply code, MQTT reason code
    error: str | None = None


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if isinstance(ts, datetime) else None


def alert_document(alert: dict[str, Any], site: Site) -> dict[str, Any]:
    """The structured alert every channel carries (names beside ids, UTC ISO times)."""
    cams = {c.id: c.name for c in site.cameras}
    zones = {z.id: z.name for z in site.zones}
    return {
        "id": alert["alert_id"],
        "rule": alert["rule_name"],
        "type": alert["alert_type"],
        "severity": alert["severity"],
        "status": alert["status"],
        "camera_id": alert["camera_id"],
        "camera_name": cams.get(alert["camera_id"] or ""),
        "zone_id": alert["zone_id"],
        "zone_name": zones.get(alert["zone_id"] or ""),
        "track_id": alert["track_id"],
        "visitor_id": alert["visitor_id"],
        "worker_id": alert["worker_id"],
        "message": alert["message"],
        "started_at": _iso(alert["started_at"]),
        "ended_at": _iso(alert["ended_at"]),
        "acknowledged_by": alert["acknowledged_by"],
        "acknowledged_at": _iso(alert["acknowledged_at"]),
        "action_taken": alert["action_taken"],
        "resolved_by": alert["resolved_by"],
        "resolved_at": _iso(alert["resolved_at"]),
        "auto_resolved": alert["auto_resolved"],
        "source": alert["source"],
        "site": site.name,
    }


def summary(alert: dict[str, Any], event: str, site: Site) -> str:
    doc = alert_document(alert, site)
    where = " / ".join(x for x in (doc["camera_name"], doc["zone_name"]) if x) or site.name
    verb = {
        "new": "",
        "acknowledged": f" — acknowledged by {doc['acknowledged_by']}",
        "resolved": " — resolved" + (" (cleared)" if doc["auto_resolved"] else f" by {doc['resolved_by']}"),
    }
    return f"[{doc['severity'].upper()}] {doc['message']} ({where}){verb[event]}"


def _env(name: str | None, channel: Channel) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise ChannelNotConfigured(f"channel {channel.name}: environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class ChannelSettings:
    """What a channel's environment resolves to. Read once, before a try is claimed, and handed to the
    sender, so a try never meets an unset variable half-way; the secrets are kept out of the repr."""

    url: str | None = field(default=None, repr=False)  # webhook URL (it may embed a token)
    host: str | None = None  # MQTT broker
    port: int | None = None
    password: str | None = field(default=None, repr=False)  # SMTP / MQTT login


def channel_settings(channel: Channel) -> ChannelSettings:
    """The channel's resolved settings. Raises ChannelNotConfigured (an environment variable it names is
    unset, a bad broker URL) with a message that names the variable, never its value.

    Resolved before a try is claimed, so a channel that is not configured never leaves a ledger row: a
    claim withdrawn only after the fact would stay `sending` if the process died in between, and hold
    the event back from a configured restart for the stale-claim grace period."""
    url = host = port = password = None
    if channel.type == "webhook":
        url = _env(channel.url_env, channel)
    elif channel.type == "mqtt":
        parts = urlsplit(channel.url or _env(channel.url_env, channel))
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ChannelNotConfigured(f"channel {channel.name}: the broker must be mqtt://host[:port]")
        host, port = parts.hostname, parts.port or 1883
    if channel.type in ("email", "mqtt") and channel.username:
        password = _env(channel.password_env, channel)
    return ChannelSettings(url=url, host=host, port=port, password=password)


def send(
    channel: Channel,
    settings: ChannelSettings,
    alert: dict[str, Any],
    event: str,
    site: Site,
    before: dict[str, Any] | None = None,
) -> SendResult:
    """Deliver one event with the channel's resolved settings; failures come back as a result (the ledger
    records them), never as secrets."""
    if channel.type == "webhook":
        return _webhook(channel, settings, alert, event, site)
    if channel.type == "email":
        return _email(channel, settings, alert, event, site)
    return _mqtt(channel, settings, alert, event, site, before)


def _webhook(
    channel: Channel, settings: ChannelSettings, alert: dict[str, Any], event: str, site: Site
) -> SendResult:
    body = json.dumps(
        {"text": summary(alert, event, site), "event": event, "alert": alert_document(alert, site)}
    ).encode()
    request = urllib.request.Request(
        settings.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "sightline-alerts",
            # Receivers can drop a repeat (the only way one happens: a crash after the POST, before the
            # ledger).
            "Idempotency-Key": f"{alert['alert_id']}:{channel.name}:{event}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout_seconds) as response:  # noqa: S310
            return SendResult(True, response.status)
    except urllib.error.HTTPError as exc:
        return SendResult(False, exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError) as exc:  # unreachable, refused, timeout; no URL in the text
        reason = getattr(exc, "reason", exc)
        return SendResult(False, None, f"{type(exc).__name__}: {reason}")


def _email(
    channel: Channel, settings: ChannelSettings, alert: dict[str, Any], event: str, site: Site
) -> SendResult:
    msg = EmailMessage()
    msg["Subject"] = summary(alert, event, site)
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg["Message-ID"] = f"<{alert['alert_id']}.{event}@sightline>"  # a repeat is recognisable
    msg.set_content(summary(alert, event, site) + "\n\n" + json.dumps(alert_document(alert, site), indent=2))
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_seconds) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username:
                smtp.login(channel.username, settings.password)
            refused = smtp.send_message(msg)
        if refused:
            return SendResult(False, None, f"recipients refused: {', '.join(sorted(refused))}")
        return SendResult(True, 250)
    except smtplib.SMTPResponseException as exc:
        return SendResult(False, exc.smtp_code, f"SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, OSError) as exc:
        return SendResult(False, None, f"{type(exc).__name__}: {exc}")


def mqtt_client(channel: Channel, settings: ChannelSettings, client_id: str):
    """A connected paho client for the channel (its resolved broker and password)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if channel.username:
        client.username_pw_set(channel.username, settings.password)
    client.connect(settings.host, settings.port, keepalive=30)
    client.loop_start()
    return client


def frigate_event(alert: dict[str, Any], event: str, site: Site, before: dict[str, Any] | None) -> dict:
    """Frigate's event envelope: new (before = after), update (acknowledged), end (resolved)."""

    def shape(a: dict[str, Any]) -> dict[str, Any]:
        doc = alert_document(a, site)
        start = a["started_at"]
        end = (a["ended_at"] or a["resolved_at"]) if a["status"] == "resolved" else None
        return {
            "id": doc["id"],
            "camera": doc["camera_id"],
            "label": doc["type"],
            "sub_label": doc["rule"],
            "severity": doc["severity"],
            "zones": [doc["zone_id"]] if doc["zone_id"] else [],
            "current_zones": [doc["zone_id"]] if doc["zone_id"] and not end else [],
            "start_time": start.timestamp() if start else None,
            "end_time": end.timestamp() if end else None,
            "active": not end,
            "stationary": doc["type"] == "idle",
            "sightline": doc,
        }

    after = shape(alert)
    prior = shape(before) if before else after
    return {
        "type": {"new": "new", "acknowledged": "update", "resolved": "end"}[event],
        "before": prior,
        "after": after,
    }


def _mqtt(
    channel: Channel,
    settings: ChannelSettings,
    alert: dict[str, Any],
    event: str,
    site: Site,
    before: dict[str, Any] | None,
) -> SendResult:
    client = mqtt_client(channel, settings, f"sightline-alerts-{alert['alert_id'][:8]}-{os.getpid()}")
    try:
        camera = alert["camera_id"] or "site"
        info = client.publish(
            f"{channel.topic_prefix}/{camera}/alerts",
            json.dumps(frigate_event(alert, event, site, before)),
            qos=1,
        )
        info.wait_for_publish(timeout=channel.timeout_seconds)
        if not info.is_published():
            return SendResult(False, int(info.rc), "the broker did not acknowledge the publish in time")
        return SendResult(True, int(info.rc))
    except (OSError, RuntimeError, ValueError) as exc:
        return SendResult(False, None, f"{type(exc).__name__}: {exc}")
    finally:
        client.loop_stop()
        client.disconnect()
