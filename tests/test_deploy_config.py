"""The shipped deployment config, exercised: the Mosquitto ACL with per-camera users and the TLS listener
example run in a real broker; docker-compose.yml and the Dockerfile keep the hardening of issue 11 (rows 2,
6, 7, 10 and the "Also" line). Docker itself is not available here, so the compose file is checked as data.
"""

from __future__ import annotations

import getpass
import queue
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from ingestion.stream.broker import PrivateMosquitto, free_port

REPO = Path(__file__).resolve().parent.parent
ACL = REPO / "docker" / "mosquitto" / "acl"
TLS_EXAMPLE = REPO / "docker" / "mosquitto" / "tls-listener.conf"
CAMERAS = ("CAM01", "CAM02")


def _passwd(tmp_path: Path, users: dict[str, str]) -> Path:
    path = tmp_path / "passwd"
    path.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True)  # hash them in place
    return path


def _client(port: int, user: str | None, password: str | None, **tls) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"test-{user}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    if user:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set(**tls)
    return client


def _connect(client: mqtt.Client, port: int) -> int:
    """Connect and return the CONNACK reason code value (0 = accepted)."""
    codes: queue.Queue = queue.Queue()
    client.on_connect = lambda c, u, f, reason, props: codes.put(reason.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return codes.get(timeout=10)


@pytest.mark.mqtt
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_acl_lets_each_camera_publish_only_its_own_topic(tmp_path):
    passwords = {"sightline": "consumer-pw", **{c: f"{c}-pw" for c in CAMERAS}}
    settings = {
        "allow_anonymous": "false",
        "password_file": str(_passwd(tmp_path, passwords)),
        "acl_file": str(ACL),
        "user": getpass.getuser(),
    }
    with PrivateMosquitto(**settings) as broker:
        received: queue.Queue = queue.Queue()
        consumer = _client(broker.port, "sightline", passwords["sightline"])
        consumer.on_message = lambda c, u, msg: received.put((msg.topic, msg.payload))
        assert _connect(consumer, broker.port) == 0
        subscribed: queue.Queue = queue.Queue()
        consumer.on_subscribe = lambda c, u, mid, codes, props: subscribed.put([r.value for r in codes])
        consumer.subscribe("sightline/+/detections", qos=1)
        assert subscribed.get(timeout=10) == [1]
        for target in ("CAM01", "CAM02", "CAM01"):
            cam1 = _client(broker.port, "CAM01", passwords["CAM01"])  # a fresh session for each try
            assert _connect(cam1, broker.port) == 0
            message = f"from CAM01 as {target}".encode()
            try:
                cam1.publish(f"sightline/{target}/detections", message, qos=1).wait_for_publish(5)
            except RuntimeError:  # a denied publish may also end the session, depending on timing
                assert target == "CAM02"
            cam1.loop_stop()
            cam1.disconnect()
        got = []
        try:
            while True:
                got.append(received.get(timeout=2))
        except queue.Empty:
            pass
        assert got == [("sightline/CAM01/detections", b"from CAM01 as CAM01")] * 2
        # A wrong password, and no user at all, are refused (135 = not authorized, 134 = bad credentials).
        assert _connect(_client(broker.port, "CAM02", "guess"), broker.port) in (134, 135)
        assert _connect(_client(broker.port, None, None), broker.port) in (134, 135)
        consumer.loop_stop()
        consumer.disconnect()


@pytest.mark.mqtt
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_listener_example_serves_encrypted_clients(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(certs / "ca.key"),
        "-out",
        str(certs / "ca.crt"),
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(certs / "server.key"),
        "-out",
        str(certs / "server.csr"),
    )
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(certs / "server.csr"),
        "-CA",
        str(certs / "ca.crt"),
        "-CAkey",
        str(certs / "ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(certs / "san.ext"),
        "-out",
        str(certs / "server.crt"),
    )
    tls_port = free_port()
    settings = {}
    for line in TLS_EXAMPLE.read_text().splitlines():  # the example's own lines, paths and port swapped
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            value = value.replace("/mosquitto/certs", str(certs))
            settings[key] = f"{tls_port} 127.0.0.1" if key == "listener" else value
    assert {"listener", "cafile", "certfile", "keyfile"} <= set(settings)
    with PrivateMosquitto(**settings, user=getpass.getuser()):
        received: queue.Queue = queue.Queue()
        sub = _client(tls_port, None, None, ca_certs=str(certs / "ca.crt"))
        sub.on_message = lambda c, u, msg: received.put(msg.payload)
        assert _connect(sub, tls_port) == 0
        sub.subscribe("sightline/CAM01/detections", qos=1)
        pub = _client(tls_port, None, None, ca_certs=str(certs / "ca.crt"))
        assert _connect(pub, tls_port) == 0
        payload = b"over TLS"
        for _ in range(20):  # until the subscription is in place
            pub.publish("sightline/CAM01/detections", payload, qos=1).wait_for_publish(5)
            try:
                assert received.get(timeout=0.5) == payload
                break
            except queue.Empty:
                continue
        else:
            pytest.fail("no message came through the TLS listener")
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
        # A client that does not trust the CA is refused at the handshake.
        untrusted = _client(tls_port, None, None, ca_certs=str(certs / "server.crt"))
        with pytest.raises(OSError):
            untrusted.connect("127.0.0.1", tls_port)


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_binds_the_webserver_to_loopback_and_pins_images():
    services = _compose()["services"]
    assert services["dagster_webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    for name, service in services.items():
        image = service.get("image", "")
        if image.startswith("sightline:"):
            continue  # built here from the Dockerfile
        pinned = re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", image)
        assert pinned, f"{name}: {image} is not pinned to a version"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"


def test_compose_runs_services_as_the_writer_with_the_password_outside_the_url():
    compose = _compose()
    services = compose["services"]
    long_running = ("sightline_code", "dagster_webserver", "dagster_daemon", "sightline_stream")
    for name in long_running:
        env = services[name]["environment"]
        url = env["SIGHTLINE_WAREHOUSE_URL"]
        assert url.startswith("postgresql://sightline_writer@"), (name, url)
        assert "PGPASSWORD" in env and "${SIGHTLINE_WRITER_PASSWORD" in env["PGPASSWORD"]
        assert env["DAGSTER_PG_USER"] != "postgres"
        # Row 2: no default detection source (`:?` makes compose refuse to start without one).
        assert env["SIGHTLINE_SOURCE"].startswith("${SIGHTLINE_SOURCE:?")
    for name, service in services.items():
        for value in (service.get("environment") or {}).values():
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), f"{name}: a password inside a URL"
    setup = services["sightline_setup"]
    command = " ".join(setup["entrypoint"])
    assert "sightline db setup" in command and "grant-writer" in command
    for name in long_running:
        waits_for = services[name]["depends_on"]
        assert "sightline_setup" in waits_for or "sightline_code" in waits_for, name
