"""Broker settings the delivery guarantee relies on, and a private Mosquitto for tests and benchmarks.

Mosquitto's defaults drop messages: `max_queued_messages 1000` per client beyond the in-flight window,
for a connected consumer that is busy as well as for an offline persistent session. A consumer that is
down (or paused by a warehouse outage) for longer than 1000 messages would lose data at the broker,
whatever the consumer does. Deploy with (mosquitto.conf):

    persistence true                    # sessions and queued messages survive a broker restart
    persistent_client_expiration 7d     # keep an offline consumer's session this long
    max_queued_messages 0               # 0 = no count limit; bound by bytes instead:
    max_queued_bytes 1073741824         # per client, sized for the longest outage you must absorb

`MOSQUITTO_SETTINGS` holds the same for a private broker.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO_SETTINGS = {
    "allow_anonymous": "true",
    "persistence": "false",  # a test broker lives as long as its test; production: true (see above)
    "max_queued_messages": "0",
    "max_queued_bytes": str(1 << 30),
    "max_inflight_messages": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMosquitto:
    """A mosquitto process on a free loopback port with `MOSQUITTO_SETTINGS`; a context manager."""

    def __init__(self, port: int | None = None, *, persistent: bool = False, **settings: str):
        """`persistent=True`: sessions and queued messages are saved on stop and reloaded by `restart`."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="sightline-mosquitto-")
        # Started as root, mosquitto would switch to user "mosquitto", who cannot write our temp dir.
        saved = (
            {"persistence": "true", "persistence_location": f"{self._dir.name}/", "user": getpass.getuser()}
            if persistent
            else {}
        )
        self.settings = MOSQUITTO_SETTINGS | saved | settings
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> PrivateMosquitto:
        conf = Path(self._dir.name) / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1"] + [f"{k} {v}" for k, v in self.settings.items()]
        conf.write_text("\n".join(lines) + "\n")
        log = open(Path(self._dir.name) / "mosquitto.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_text = (Path(self._dir.name) / "mosquitto.log").read_text()
                raise RuntimeError(f"mosquitto exited: {log_text}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within 10 s")

    def _terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # mosquitto saves its persistence file on SIGTERM
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the broker (every client is disconnected), stay down a while, start it on the same port."""
        self._terminate()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        self._terminate()
        self._dir.cleanup()

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
