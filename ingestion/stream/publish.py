"""A QoS 1 publisher for stream messages (demos, tests, benchmarks; edge boxes use their own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import paho.mqtt.client as mqtt


class Publisher:
    """Publishes (topic, payload) pairs with QoS 1 and can wait until the broker has acknowledged them all."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, client_id: str | None = None):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sightline-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)  # 0 = unlimited: never drop on the client side
        self.client.connect(host, port)
        self.client.loop_start()
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def publish(self, messages: Iterable[tuple[str, bytes | str]], *, per_second: float | None = None) -> int:
        """Publish; with `per_second`, paced evenly. Returns how many were queued."""
        start = time.monotonic()
        n = 0
        for topic, payload in messages:
            if per_second:
                delay = start + n / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._pending.append(self.client.publish(topic, payload, qos=1))
            n += 1
        return n

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every message published so far is acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        for info in self._pending:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(f"broker did not acknowledge message {info.mid} within {timeout:.0f} s")
        self._pending.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
