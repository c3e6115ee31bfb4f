"""`sightline alerts` commands, the Dagster delivery sensor and the productivity_drop rule, on a real DuckDB
warehouse (and a local webhook receiver)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from alerts_support import Receiver, site_with_alerts, webhook_alerts
from conftest import ADMIN_URL

from ingestion.alerts import store
from ingestion.alerts.batch import evaluate_day
from ingestion.warehouse import connect
from ingestion.warehouse.roles import grant_bi, grant_writer
from orchestration.cli import main
from orchestration.translator import SightlineTranslator

ENV = "SIGHTLINE_TEST_ALERT_HOOK"
T0 = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
RULE = {
    "name": "robot-cell",
    "type": "restricted_zone_entry",
    "zone_types": ["restricted"],
    "severity": "critical",
    "channels": ["hook"],
}


@pytest.fixture
def raised(tmp_path):
    """A warehouse with two open alerts, and the site file that declares their rule."""
    site_path, site = site_with_alerts(tmp_path, webhook_alerts(ENV, [RULE]))
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    rule = site.alerts.rule("robot-cell")
    with connect(url, site) as wh:
        wh.require_setup()
        out = store.record(
            wh,
            site,
            [
                store.Candidate(
                    rule,
                    f"CAM01/Z04/track {t}",
                    "CAM01",
                    T0 + timedelta(minutes=t),
                    T0 + timedelta(minutes=t, seconds=5),
                    None,
                    f"Track {t} entered Robot Cell",
                    zone_id="Z04",
                    track_id=t,
                )
                for t in (1, 2)
            ],
            "live",
        )
    return url, site_path, site, out.raised


def cli(*args: str) -> int:
    return main(["alerts", *args])


def test_list_ack_resolve(raised, capsys):
    url, site_path, site, ids = raised
    common = ["--warehouse", url, "--site", str(site_path)]
    assert cli("ack", ids[0][:8], "--by", "Somchai", "--action", "stopped the robot", *common) == 0
    assert "acknowledged by Somchai" in capsys.readouterr().out
    assert cli("resolve", ids[1], "--by", "Anong", *common) == 0
    capsys.readouterr()
    assert cli("list", "--format", "json", *common) == 0
    rows = {r["alert_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows[ids[0]]["status"], rows[ids[0]]["acknowledged_by"], rows[ids[0]]["action_taken"]) == (
        "acknowledged",
        "Somchai",
        "stopped the robot",
    )
    assert (rows[ids[1]]["status"], rows[ids[1]]["resolved_by"], rows[ids[1]]["auto_resolved"]) == (
        "resolved",
        "Anong",
        False,
    )
    assert cli("list", "--status", "acknowledged", *common) == 0
    out = capsys.readouterr().out
    assert ids[0][:10] in out and ids[1][:10] not in out and "1 alerts" in out
    assert cli("list", "--since", (T0 + timedelta(minutes=2)).isoformat(), *common) == 0
    assert ids[0][:10] not in capsys.readouterr().out
    with connect(url, site) as wh:  # BI's view: open and acknowledged only, with names
        view = wh.query("SELECT alert_id, zone_name, camera_name, status FROM analytics.active_alerts").rows()
    assert view == [(ids[0], "Robot Cell", "Station 1 Overhead", "acknowledged")]
    # Mistakes are named: too short an id, resolving twice.
    assert cli("ack", "abc", "--by", "x", *common) == 1
    assert "too short" in capsys.readouterr().err
    assert cli("resolve", ids[1], "--by", "x", *common) == 1
    assert "already resolved" in capsys.readouterr().err


class LedgerTranslator(SightlineTranslator):
    """Maps ops.alerts to another asset key: the sensor's observation must follow it."""

    def asset_key(self, table: str) -> dg.AssetKey:
        return dg.AssetKey(["alerting", "ledger"]) if table == "ops.alerts" else super().asset_key(table)


def test_deliver_command_and_sensor_send_each_alert_once(raised, monkeypatch, capsys):
    from orchestration.definitions import build_definitions
    from orchestration.resources import SiteResource, WarehouseResource
    from orchestration.sensors import deliver_alerts_sensor

    url, site_path, site, ids = raised
    defs = build_definitions(site_path=site_path, warehouse_url=url, translator=LedgerTranslator())
    sensor = defs.resolve_sensor_def("deliver_alerts")
    # On the embedded DuckDB file the sensor starts stopped; elsewhere running.
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert deliver_alerts_sensor(embedded=False).default_status == dg.DefaultSensorStatus.RUNNING
    receiver = Receiver()
    try:
        monkeypatch.delenv(ENV, raising=False)
        assert cli("deliver", "--warehouse", url, "--site", str(site_path)) == 0
        assert "not configured (environment variable unset): hook" in capsys.readouterr().out
        monkeypatch.setenv(ENV, receiver.url)
        with connect(url, site) as wh:  # one through the CLI's code path...
            from ingestion.alerts.deliver import deliver_pending

            assert len(deliver_pending(wh, site, channels={"nothing"}).sent) == 0
        resources = {
            "warehouse": WarehouseResource(url=url, site=SiteResource(path=str(site_path))),
            "site": SiteResource(path=str(site_path)),
        }
        repo = defs.get_repository_def()
        with dg.instance_for_test() as instance:
            with dg.build_sensor_context(
                instance=instance, resources=resources, repository_def=repo
            ) as context:
                first = sensor(context)
            with dg.build_sensor_context(
                instance=instance, resources=resources, repository_def=repo
            ) as context:
                second = sensor(context)
        assert cli("deliver", "--warehouse", url, "--site", str(site_path)) == 0
        assert capsys.readouterr().out.startswith("0 sent")
    finally:
        receiver.close()
    assert isinstance(first, dg.SensorResult)
    assert first.asset_events[0].metadata["sent"].value == 2
    assert first.asset_events[0].asset_key == dg.AssetKey(["alerting", "ledger"])
    assert isinstance(second, dg.SkipReason) and "nothing to deliver" in second.skip_message
    assert sorted(r.body["alert"]["id"] for r in receiver.requests) == sorted(ids)
    assert all(r.headers["Idempotency-Key"].endswith(":hook:new") for r in receiver.requests)


def test_productivity_drop_against_the_trailing_median(tmp_path):
    """A block below (1 - threshold) x its trailing 7-workday median raises; one within it does not."""
    rule = {"name": "slow", "type": "productivity_drop", "threshold": 0.25, "severity": "info"}
    _, site = site_with_alerts(tmp_path, {"rules": [rule]})
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    day = date(2025, 1, 24)  # a Friday; the 8 workdays before it hold the history
    history = [day - timedelta(days=d) for d in range(1, 13) if (day - timedelta(days=d)).weekday() < 5][:8]
    with connect(url, site) as wh:
        wh.require_setup()
        # The marts' shape, made by hand: this test is about the rule, not the models.
        wh.query(
            "CREATE TABLE analytics.index_records (date DATE, index_number INTEGER, "
            "scheduled_start TIMESTAMPTZ, scheduled_end TIMESTAMPTZ, productivity_score DOUBLE)"
        )
        wh.query(
            "CREATE TABLE analytics.anomalies (anomaly_id VARCHAR, anomaly_type VARCHAR, "
            "ts TIMESTAMPTZ, ts_end TIMESTAMPTZ, camera_id VARCHAR, zone_id VARCHAR, track_id BIGINT, "
            "session_id VARCHAR, description VARCHAR, metadata JSON)"
        )
        wh.query("CREATE TABLE analytics.sessions (session_id VARCHAR, worker_id VARCHAR, visitor_id BIGINT)")
        scores = {1: (0.70, 0.69), 2: (0.70, 0.60), 3: (0.70, 0.40)}  # block: (history, the day)
        for d in [*history, day]:
            for block, (usual, today) in scores.items():
                start = site.local_datetime(d, datetime.min.time()) + timedelta(hours=9 + block)
                # History varies around `usual`; its median over the last 7 workdays is `usual`.
                score = today if d == day else usual + (0.05 if d.day % 2 else -0.05) * (d != history[0])
                wh.query(
                    "INSERT INTO analytics.index_records VALUES ({p}, {p}, {p}, {p}, {p})",
                    [d, block, start, start + timedelta(minutes=45), score],
                )
        result = evaluate_day(wh, site, day)
        alerts = store.load_alerts(wh)
    assert [a["subject"] for a in alerts] == ["index 3"] and result.outcome.raised == [alerts[0]["alert_id"]]
    meta = json.loads(alerts[0]["metadata"])
    assert meta["productivity"] == pytest.approx(0.40) and meta["median"] == pytest.approx(0.70, abs=0.051)


def test_roles_writer_raises_and_acks_bi_reads_active_alerts_only(set_up_pg_url, tmp_path):
    """PostgreSQL roles: the writer (stream, CLI) writes ops.alerts; BI reads analytics.active_alerts (with
    the owner's rights) and nothing in ops; setup run again keeps all of that."""
    url = set_up_pg_url
    _, site = site_with_alerts(tmp_path, webhook_alerts(ENV, [RULE]))
    suffix = uuid.uuid4().hex[:8]
    writer, bi, password = f"writer_{suffix}", f"bi_{suffix}", uuid.uuid4().hex

    def as_role(role: str) -> str:
        return f"postgresql://{role}:{password}@{url.split('@', 1)[1]}"

    try:
        grant_bi(url, bi, password, writer_role=writer)
        grant_writer(url, writer, password, bi_role=bi)
        rule = site.alerts.rule("robot-cell")
        with connect(as_role(writer), site) as wh:
            wh.require_setup()
            out = store.record(
                wh,
                site,
                [
                    store.Candidate(
                        rule,
                        "CAM01/Z04/track 1",
                        "CAM01",
                        T0,
                        T0 + timedelta(seconds=5),
                        None,
                        "Track 1 entered",
                        zone_id="Z04",
                        track_id=1,
                    )
                ],
                "live",
            )
            store.acknowledge(wh, out.raised[0], "lead")
        with connect(url, site) as wh:
            wh.setup()  # the owner again (an upgrade): recreates the view, which the writer never owned
        with psycopg.connect(as_role(bi), autocommit=True) as conn:
            rows = conn.execute("SELECT alert_id, status, zone_name FROM analytics.active_alerts").fetchall()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT 1 FROM ops.alerts")
        assert rows == [(out.raised[0], "acknowledged", "Robot Cell")]
    finally:  # roles are cluster-wide: their grants go in this database and in the admin one
        for admin in (url, ADMIN_URL):
            with psycopg.connect(admin, autocommit=True) as conn:
                for role in (writer, bi):
                    conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for role in (writer, bi):
                conn.execute(f'DROP ROLE "{role}"')
