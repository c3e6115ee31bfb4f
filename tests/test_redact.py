"""Issue 11 row 10: credentials never reach an error, a log line or a printout."""

from __future__ import annotations

import logging

import pytest

from ingestion.redact import redact_url
from ingestion.stream.mqtt import MqttUrl
from ingestion.transform import backend_of
from ingestion.warehouse import connect
from ingestion.warehouse.base import WarehouseNotSetUp
from orchestration.cli import main

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql://app:{SECRET}@db:5432/sightline?sslmode=require",
            "postgresql://app:***@db:5432/sightline?sslmode=require",
        ),
        (
            f"postgresql://app@db/sightline?sslmode=require&password={SECRET}",
            "postgresql://app@db/sightline?sslmode=require&password=***",
        ),
        (f"postgresql://app@db/sightline?PassWord={SECRET}", "postgresql://app@db/sightline?PassWord=***"),
        (f"host=db user=app password={SECRET} dbname=sightline", None),
        (f"host=db password='{SECRET} with spaces'", None),
        (f"rtsp://cam:{SECRET}@10.0.0.7:554/stream1", "rtsp://cam:***@10.0.0.7:554/stream1"),
        (f"mysql://root:{SECRET}@h/db", "mysql://root:***@h/db"),
        (f"postgresql://u:{SECRET}@with@at@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{SECRET}@h:notaport/db", "postgresql://u:***@h:notaport/db"),
        (f"u:{SECRET}@host", "***@host"),
        (f"password={SECRET} broken='", None),  # unparseable conninfo: hidden whole
        ("duckdb:///data/warehouse.duckdb", "duckdb:///data/warehouse.duckdb"),
        ("postgresql://app@db:5432/sightline", "postgresql://app@db:5432/sightline"),
        ("mqtt://broker:1883/sightline/+/detections", "mqtt://broker:1883/sightline/+/detections"),
    ],
)
def test_redact_url_hides_every_form_of_password(url, expected):
    out = redact_url(url)
    assert SECRET not in out and SECRET.lower() not in out.lower()
    if expected is not None:
        assert out == expected
    else:
        assert "***" in out


def test_conninfo_keeps_everything_but_the_password():
    from psycopg.conninfo import conninfo_to_dict

    out = conninfo_to_dict(redact_url(f"host=db port=5433 user=app password={SECRET} dbname=w"))
    assert out == {"host": "db", "port": "5433", "user": "app", "password": "***", "dbname": "w"}


def test_unsupported_warehouse_url_errors_hide_the_password(site, capsys):
    url = f"mysql://root:{SECRET}@db/sightline"
    for call in (lambda: connect(url, site), lambda: backend_of(url)):
        with pytest.raises(ValueError) as err:
            call()
        assert "unsupported warehouse URL 'mysql://root:***@db/sightline'" in str(err.value)
        assert SECRET not in str(err.value)
    assert main(["db", "setup", "--warehouse", url]) == 1
    captured = capsys.readouterr()
    assert "unsupported warehouse URL" in captured.err and SECRET not in captured.err + captured.out


def test_mqtt_url_errors_hide_the_password():
    with pytest.raises(ValueError) as err:
        MqttUrl.parse(f"mqtts://cam:{SECRET}@broker:8883/sightline/+/detections")
    assert SECRET not in str(err.value) and "mqtts://cam:***@broker" in str(err.value)


def test_postgres_logs_and_setup_errors_hide_the_password(pg_url, site, caplog):
    """The local server trusts 127.0.0.1, so a URL with a password connects and every message is real."""
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    assert url != pg_url
    with connect(url, site) as wh:
        with pytest.raises(WarehouseNotSetUp) as err:
            wh.require_setup()
        assert SECRET not in str(err.value) and "postgres:***@" in str(err.value)
        with caplog.at_level(logging.DEBUG):
            wh.setup()
    assert "postgres:***@" in caplog.text and SECRET not in caplog.text
