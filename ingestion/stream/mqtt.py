"""MQTT source with acknowledgements deferred until the data is committed (paho-mqtt 2.x, MQTT v5).

Delivery guarantee, end to end exactly-once (with `StreamLander`):
- QoS 1 subscription in a persistent session (clean_start=False, a session expiry interval): while the
  consumer is down, the broker keeps the session and queues messages for it.
- `manual_ack=True`: a PUBACK is sent only after the batch holding the message has committed, in the
  order the messages were received (as MQTT requires). A crash at any point leaves every uncommitted
  message unacknowledged, and the broker redelivers it on the next connection: nothing is lost.
- A redelivered message may already be committed (crash between commit and ack): the lander skips rows
  already landed identically and dead letters already written, so nothing is doubled.
- Acks never cross connections: a packet id belongs to one connection's session state, so messages
  received before a reconnect are never acknowledged on the new connection (they are redelivered there
  and acknowledged as those copies). `_generation` fences this under a lock.
- Backpressure: the client announces a Receive Maximum (the broker should stop sending once that many
  messages are unacknowledged), and received messages wait in a queue of 2 x Receive Maximum. Mosquitto
  2.0 overshoots the window after a burst of acknowledgements, so the queue is the hard bound: when it is
  full the network thread stops reading the socket (TCP backpressure) and the rest waits on the broker.
  The queue is bounded in bytes as well (`max_queued_bytes`): a few huge messages cannot exhaust memory
  where a count bound would let them in. A payload over `max_message_bytes` (site.yaml
  `stream.max_message_bytes`) is cut to a stub on receipt (`payloads.oversized_stub`) and later
  dead-lettered unparsed. Memory is therefore bounded while the warehouse is slow or down. If an outage
  outlasts 1.5 x keepalive, the broker drops the connection; everything unacknowledged is redelivered
  after the reconnect.

The broker must keep enough messages for an offline session (mosquitto: `max_queued_messages`, default
1000, and `persistent_client_expiration`); see `ingestion.stream.broker.MOSQUITTO_SETTINGS`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingestion.redact import redact_url
from ingestion.stream.payloads import oversized_stub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    topic: str

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        """`mqtt://host[:port]/topic/filter` (the topic may use + and #). Credentials come from the
        environment (SIGHTLINE_MQTT_USERNAME / SIGHTLINE_MQTT_PASSWORD), never from the URL."""
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(
                f"MQTT source must look like mqtt://host:1883/sightline/+/detections, got {redact_url(url)!r}"
            )
        if parts.username or parts.password:
            raise ValueError(
                "put MQTT credentials in SIGHTLINE_MQTT_USERNAME / SIGHTLINE_MQTT_PASSWORD, not in the URL"
            )
        topic = unquote(parts.path.lstrip("/"))
        if not topic:
            raise ValueError(
                f"MQTT source {redact_url(url)!r} names no topic; e.g. mqtt://{parts.netloc}/sightline/+/detections"
            )
        return cls(parts.hostname, parts.port or 1883, topic)


@dataclass(frozen=True)
class Message:
    payload: bytes
    topic: str
    mid: int
    qos: int
    generation: int  # connection the message arrived on
    received_at: float  # time.time()
    size: int = -1  # bytes on receipt (more than len(payload) when only a stub was kept); -1: len(payload)

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.payload))


def default_client_id(url: MqttUrl) -> str:
    """Stable across restarts (the persistent session is keyed by it), distinct per topic filter."""
    digest = hashlib.sha256(f"{url.host}:{url.port}/{url.topic}".encode()).hexdigest()[:12]
    return f"sightline-stream-{digest}"


class MqttSource:
    """Receives into a bounded in-memory queue; `poll` hands messages over, `ack` confirms committed ones."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        receive_maximum: int = 2000,
        session_expiry_seconds: int = 86_400,
        keepalive: int = 30,
        max_queued_bytes: int = 64 << 20,
        max_message_bytes: int = 262_144,
    ):
        if max_queued_bytes < max_message_bytes:
            raise ValueError(
                f"the receive window ({max_queued_bytes} bytes) must hold at least one message "
                f"of the largest accepted size ({max_message_bytes} bytes)"
            )
        self.url = MqttUrl.parse(url)
        self.client_id = client_id or default_client_id(self.url)
        self.receive_maximum = receive_maximum
        self.max_queued_bytes = max_queued_bytes
        self.max_message_bytes = max_message_bytes
        self.session_expiry_seconds = session_expiry_seconds
        self.keepalive = keepalive
        # Received, not yet polled. The hard memory bound (see the module doc; the broker may overshoot
        # Receive Maximum): at most 2 x Receive Maximum messages and max_queued_bytes. One lock and two
        # conditions on it, so a poll hands over a whole batch under one acquisition.
        self._received: deque[Message] = deque()
        self._max_received = 2 * receive_maximum
        self._queued_bytes = 0
        self._received_lock = threading.Lock()
        self._arrived = threading.Condition(self._received_lock)
        self._room = threading.Condition(self._received_lock)
        self._closing = False
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._fatal: str | None = None
        self._warned_qos0 = False
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        username = os.environ.get("SIGHTLINE_MQTT_USERNAME")
        if username:
            client.username_pw_set(username, os.environ.get("SIGHTLINE_MQTT_PASSWORD"))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Connect (resuming the persistent session) and subscribe; raises if the broker stays unreachable."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_seconds
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(
            self.url.host, self.url.port, keepalive=self.keepalive, clean_start=False, properties=props
        )
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.2):
            if self._fatal:
                self.close()
                raise ConnectionError(self._fatal)
            if time.monotonic() > deadline:
                self.close()
                raise ConnectionError(
                    f"no MQTT broker answered at {self.url.host}:{self.url.port} within "
                    f"{timeout:.0f} s; start it or fix --source"
                )
        log.info(
            "subscribed to %s on %s:%d as %s (QoS 1, persistent session)",
            self.url.topic,
            self.url.host,
            self.url.port,
            self.client_id,
        )

    def close(self) -> None:
        """Disconnect cleanly; the session (and every unacknowledged message) stays on the broker."""
        with self._received_lock:  # a network thread waiting for room must not block loop_stop's join
            self._closing = True
            self._room.notify_all()
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    # --- paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._fatal = f"MQTT broker refused the connection: {reason_code}"
            log.error(self._fatal)
            return
        log.info("connected to MQTT broker (session present: %s)", flags.session_present)
        client.subscribe(self.url.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._fatal = f"MQTT broker refused the subscription to {self.url.topic!r}: {reason_codes}"
            log.error(self._fatal)
            return
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._generation += 1  # everything received so far will be redelivered, not acked
        self._connected.clear()
        if reason_code != 0:
            log.warning(
                "MQTT connection lost (%s); reconnecting, unacknowledged messages get redelivered",
                reason_code,
            )

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if msg.qos == 0 and not self._warned_qos0:
            self._warned_qos0 = True
            log.warning(
                "received a QoS 0 message on %s: publish with QoS 1 for at-least-once delivery", msg.topic
            )
        payload, size = msg.payload, len(msg.payload)
        if size > self.max_message_bytes:  # keep a stub, not the payload: it is dead-lettered unparsed
            payload = oversized_stub(payload)
        message = Message(payload, msg.topic, msg.mid, msg.qos, self._generation, time.time(), size)
        # Blocks when the queue is full (in messages or bytes): this thread then stops reading the socket
        # (TCP backpressure) instead of buffering without limit.
        with self._received_lock:
            while self._received and (
                len(self._received) >= self._max_received
                or self._queued_bytes + len(payload) > self.max_queued_bytes
            ):
                if self._closing:  # dropped unacknowledged: the broker redelivers it next time
                    return
                self._room.wait()
            self._received.append(message)
            self._queued_bytes += len(payload)
            self._arrived.notify()

    # --- consumer side (landing thread) ---------------------------------------------------------

    def poll(self, timeout: float, max_messages: int, max_bytes: int | None = None) -> list[Message]:
        """Messages received so far (waiting up to `timeout` for the first one), at most `max_messages` and,
        beyond the first, `max_bytes` of payload."""
        if self._fatal:
            raise ConnectionError(self._fatal)
        out: list[Message] = []
        with self._received_lock:
            if not self._received and timeout > 0:
                self._arrived.wait(timeout)
            received, taken = self._received, 0
            byte_limit = float("inf") if max_bytes is None else max_bytes
            while received and len(out) < max_messages and (not out or taken < byte_limit):
                m = received.popleft()
                out.append(m)
                taken += len(m.payload)
            if out:
                self._queued_bytes -= taken
                self._room.notify_all()
        return out

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def ack(self, messages: Sequence[Message]) -> int:
        """Acknowledge committed messages, in receive order; returns how many were acked (this connection)."""
        acked = 0
        with self._lock:
            for m in messages:
                if m.qos > 0 and m.generation == self._generation:
                    self._client.ack(m.mid, m.qos)
                    acked += 1
        return acked

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        return len(self._received)
