"""Alerts against real components: DuckDB and PostgreSQL, a local HTTP receiver, a local SMTP server
(aiosmtpd) and a real Mosquitto. The expected alerts follow from detections placed in known zones at known
times; the stream path itself (`sightline stream` as a process) is in test_alerts_stream.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import numpy as np
import polars as pl
import pytest
import yaml
from alerts_support import REPO_ROOT, Receiver, person, site_with_alerts, webhook_alerts
from conftest import create_database, drop_database

from ingestion.alerts import store
from ingestion.alerts.batch import evaluate_day
from ingestion.alerts.deliver import deliver_pending
from ingestion.alerts.live import LiveAlerts
from ingestion.site import SiteConfigError, load_site
from ingestion.warehouse import connect

T0 = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)  # 09:00 in Bangkok, a Wednesday
ENV = "SIGHTLINE_TEST_ALERT_HOOK"
RULES = [
    {
        "name": "restricted",
        "type": "restricted_zone_entry",
        "zone_types": ["restricted"],
        "severity": "critical",
        "cooldown_seconds": 60,
        "channels": ["hook"],
    },
    {
        "name": "idle",
        "type": "idle",
        "zones": ["Z01"],
        "severity": "warning",
        "min_duration_seconds": 30,
        "quiet_hours": {"start": "08:30", "end": "10:00"},
        "channels": ["hook"],
    },
    {
        "name": "overflow",
        "type": "zone_overflow",
        "zones": ["Z02"],
        "severity": "error",
        "min_duration_seconds": 20,
        "channels": ["hook"],
    },
    {
        "name": "down",
        "type": "camera_down",
        "severity": "critical",
        "min_duration_seconds": 60,
        "channels": ["hook"],
    },
]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def scenario_rows() -> pl.DataFrame:
    """110 s of two cameras. Ground truth of what the rules above must raise:
    - restricted: track 7 in Z04 at 5-15 s (raised, then cleared), 50-52 s (within the 60 s cooldown:
      suppressed), 100-104 s (raised, still open at the end);
    - idle: track 2 still in Z01 0-44.5 s, moving from 45 s (raised, cleared; in quiet hours: not sent);
    - overflow: three people in Z02 (max 2) at 60-85 s (raised, cleared);
    - camera_down: CAM02 silent after 9.5 s until 95 s while CAM01 continues (raised, cleared)."""
    parts = [
        person("CAM01", 1, "Z01", s(0), 110),
        person("CAM01", 2, "Z01", s(0), 44.5, motion=0.05),
        person("CAM01", 2, "Z01", s(45), 15),
        person("CAM01", 7, "Z04", s(5), 10),
        person("CAM01", 7, "Z04", s(50), 2),
        person("CAM01", 7, "Z04", s(100), 4),
        *[person("CAM01", t, "Z02", s(60), 24.5) for t in (3, 4, 5)],
        person("CAM02", 11, "Z05", s(0), 9.5),
        person("CAM02", 11, "Z05", s(95), 15),
    ]
    return pl.concat(parts).sort("ts", "camera_id", "track_id")


def run_scenario(url: str, site, receiver: Receiver | None = None) -> list[dict]:
    """Land the rows in 10 s micro-batches as the stream does, evaluating the live rules after each."""
    rows = scenario_rows()
    live = LiveAlerts(site)
    with connect(url, site) as wh:
        wh.require_setup()
        for k in range(11):
            batch = rows.filter((pl.col("ts") >= s(10 * k)) & (pl.col("ts") < s(10 * k + 10)))
            wh.append_batch(f"test:{k}", batch.drop("batch_id"), source="stream")
            live.evaluate(wh)
            live.resolve_recovered(wh)
            live.evaluate(wh)  # evaluating twice changes nothing
        return store.load_alerts(wh)


def test_live_rules_raise_clear_suppress_and_both_backends_agree(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv(ENV, receiver.url)
    _, site = site_with_alerts(tmp_path, webhook_alerts(ENV, RULES))
    duck = f"duckdb:///{tmp_path / 'w.duckdb'}"
    pg = create_database("sightline_alerts16")
    try:
        from conftest import owner_setup

        owner_setup(pg)
        results = {"duckdb": run_scenario(duck, site), "postgres": run_scenario(pg, site)}
        sent = {}
        for backend, url in (("duckdb", duck), ("postgres", pg)):
            with connect(url, site) as wh:
                before = len(receiver.requests)
                deliver_pending(wh, site)
                deliver_pending(wh, site)  # a second pass owes nothing
                sent[backend] = receiver.requests[before:]
    finally:
        drop_database(pg)

    keys = ["alert_id", "rule_name", "subject", "started_at", "ended_at", "status", "auto_resolved", "notify"]
    rows = {
        b: sorted((tuple(a[k] for k in keys) for a in r), key=lambda t: (t[3], t[0]))
        for b, r in results.items()
    }
    assert rows["duckdb"] == rows["postgres"]
    got = {(a["rule_name"], a["subject"], a["started_at"]): a for a in results["duckdb"]}
    expected = {
        ("restricted", "CAM01/Z04/track 7", s(5)),
        ("restricted", "CAM01/Z04/track 7", s(100)),
        ("idle", "CAM01/Z01/track 2", s(0)),
        ("overflow", "CAM01/Z02", s(60)),
        ("down", "CAM02", s(9.5)),
    }
    assert set(got) == expected
    first = got[("restricted", "CAM01/Z04/track 7", s(5))]
    last = got[("restricted", "CAM01/Z04/track 7", s(100))]
    assert (first["status"], first["auto_resolved"], first["ended_at"]) == ("resolved", True, s(15))
    assert (last["status"], last["ended_at"]) == ("open", None)  # still inside at the end of the data
    idle = got[("idle", "CAM01/Z01/track 2", s(0))]
    assert (idle["ended_at"], idle["status"], idle["notify"]) == (s(44.5), "resolved", False)  # quiet hours
    overflow = got[("overflow", "CAM01/Z02", s(60))]
    assert overflow["ended_at"] == s(84.5) and json.loads(overflow["metadata"])["max_people"] == 3
    down = got[("down", "CAM02", s(9.5))]
    assert down["status"] == "resolved" and down["auto_resolved"]
    for backend, requests in sent.items():  # each notifiable alert once; the quiet-hours one never
        ids = sorted(r.body["alert"]["id"] for r in requests)
        assert ids == sorted(a["alert_id"] for a in results[backend] if a["notify"]), backend
        assert len(ids) == 4
        assert all(r.body["text"].startswith("[") and r.body["event"] == "new" for r in requests)


def test_live_idle_at_exactly_the_idle_threshold_is_moving(tmp_path):
    """A motion score exactly at idle_motion_score is moving, as in the marts (is_active: score >= the
    threshold); the next float32 below it is idle. 0.25 is exact in float32 (motion_score is REAL), so the
    landed score compares exactly: track 1 (at 0.25 for 20 s) raises nothing and counts as active, track 2
    (just below) raises and counts as idle."""
    doc = yaml.safe_load((REPO_ROOT / "site.yaml").read_text())
    rule = {
        "name": "idle",
        "type": "idle",
        "zones": ["Z01"],
        "severity": "warning",
        "min_duration_seconds": 10,
    }
    _, site = site_with_alerts(
        tmp_path,
        webhook_alerts(ENV, [rule]),
        thresholds=doc["thresholds"] | {"idle_motion_score": 0.25},
    )
    below = float(np.nextafter(np.float32(0.25), np.float32(0)))  # 0.24999998509883881
    rows = pl.concat(
        [person("CAM01", 1, "Z01", s(0), 20, motion=0.25), person("CAM01", 2, "Z01", s(0), 20, motion=below)]
    ).sort("ts", "track_id")
    with connect(f"duckdb:///{tmp_path / 'w.duckdb'}", site) as wh:
        wh.require_setup()
        wh.append_batch("b1", rows.drop("batch_id"), source="stream")
        raised = LiveAlerts(site).evaluate(wh).raised
        alerts = store.load_alerts(wh)
    assert [(a["subject"], a["started_at"], a["alert_id"]) for a in alerts] == [
        ("CAM01/Z01/track 2", s(0), raised[0])
    ]
    assert json.loads(alerts[0]["metadata"])["motion_below"] == 0.25
    # Occupancy (published on MQTT channels) counts the same way: of the two people in Z01, one is active.
    occupancy = LiveAlerts(site)._occupancy("CAM01", rows, s(20))  # noqa: SLF001 - the counting alone
    z01 = occupancy.filter(pl.col("zone_id") == "Z01")
    assert (z01["present"].item(), z01["active"].item()) == (2, 1)


def test_webhook_500_twice_then_200_is_one_delivery_after_three_attempts(tmp_path, monkeypatch):
    receiver = Receiver(script=[500, 500])
    monkeypatch.setenv(ENV, receiver.url)
    _, site = site_with_alerts(tmp_path, webhook_alerts(ENV, RULES[:1]))
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    try:
        with connect(url, site) as wh:
            wh.require_setup()
            rule = site.alerts.rule("restricted")
            store.record(
                wh,
                site,
                [
                    store.Candidate(
                        rule,
                        "CAM01/Z04/track 7",
                        "CAM01",
                        s(5),
                        s(6),
                        None,
                        "Track 7 entered",
                        zone_id="Z04",
                        track_id=7,
                    )
                ],
                "live",
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                report = deliver_pending(wh, site)
                if not report.pending:
                    break
                time.sleep(0.05)
            for _ in range(3):  # done: nothing more is sent, however often it is asked
                deliver_pending(wh, site)
            ledger = wh.query(
                "SELECT attempt, status, response_code, started_at, sent_at, next_attempt_at "
                "FROM ops.alert_deliveries ORDER BY attempt"
            ).to_dicts()
    finally:
        receiver.close()
    ids = [r.body["alert"]["id"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert [(r["attempt"], r["status"], r["response_code"]) for r in ledger] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "sent", 200),
    ]
    assert ledger[2]["sent_at"] is not None
    for failed, retry in zip(ledger[:2], receiver.requests[1:], strict=True):  # backoff 0.2 s, then 0.4 s
        wait = (failed["next_attempt_at"] - failed["started_at"]).total_seconds()
        assert wait >= 0.2 * 2 ** (failed["attempt"] - 1)
        assert retry.at >= failed["next_attempt_at"].timestamp()  # never retried before its time


def test_an_unconfigured_channel_is_skipped_without_a_claim(tmp_path, monkeypatch):
    """A process killed while it skips a channel whose URL is unset must leave no `sending` claim: a
    claim would hold the alert back from the next, configured run for the stale-claim grace period
    (a flake of test_alerts_stream's kill-and-restart test, CI of stop 20)."""
    from ingestion.alerts import deliver

    monkeypatch.delenv(ENV, raising=False)
    _, site = site_with_alerts(tmp_path, webhook_alerts(ENV, RULES[:1]))
    rule = site.alerts.rule("restricted")
    candidate = store.Candidate(rule, "CAM01/Z04/track 7", "CAM01", s(5), s(6), None, "in", zone_id="Z04")
    receiver = Receiver()
    try:
        with connect(f"duckdb:///{tmp_path / 'w.duckdb'}", site) as wh:
            wh.require_setup()
            store.record(wh, site, [candidate], "live", now=s(6))

            def killed(*args, **kwargs):  # the process dies here, if it ever tries
                raise SystemExit("killed")

            monkeypatch.setattr(deliver, "_try", killed)
            report = deliver_pending(wh, site, now=s(7))
            assert report.not_configured == {"hook"} and report.sent == []
            assert wh.query("SELECT COUNT(*) AS n FROM ops.alert_deliveries")["n"][0] == 0
            monkeypatch.undo()
            monkeypatch.setenv(ENV, receiver.url)
            report = deliver_pending(wh, site, now=s(8))  # the configured restart sends it at once
    finally:
        receiver.close()
    assert len(report.sent) == 1 and len(receiver.requests) == 1


def test_email_channel_delivers_through_smtp(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self):
            super().__init__()
            self.messages = []

        def handle_message(self, message):
            self.messages.append(message)

    from ingestion.stream.broker import free_port

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        alerts = {
            "channels": [
                {
                    "name": "mail",
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": controller.port,
                    "starttls": False,
                    "from": "sightline@example.test",
                    "to": ["lead@example.test"],
                }
            ],
            "rules": [{**RULES[0], "channels": ["mail"]}],
        }
        _, site = site_with_alerts(tmp_path, alerts)
        with connect(f"duckdb:///{tmp_path / 'w.duckdb'}", site) as wh:
            wh.require_setup()
            rule = site.alerts.rule("restricted")
            out = store.record(
                wh,
                site,
                [
                    store.Candidate(
                        rule,
                        "CAM01/Z04/track 7",
                        "CAM01",
                        s(5),
                        s(6),
                        None,
                        "Track 7 entered Robot Cell",
                        zone_id="Z04",
                    )
                ],
                "live",
            )
            report = deliver_pending(wh, site)
            deliver_pending(wh, site)
    finally:
        controller.stop()
    assert len(report.sent) == 1 and len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["To"] == "lead@example.test" and "[CRITICAL] Track 7 entered Robot Cell" in msg["Subject"]
    assert out.raised[0] in msg.get_payload()


def test_mqtt_channel_publishes_frigate_lifecycle_and_occupancy(tmp_path):
    import paho.mqtt.client as mqtt

    from ingestion.stream.broker import PrivateMosquitto

    with PrivateMosquitto() as broker:
        alerts = {
            "channels": [
                {"name": "ha", "type": "mqtt", "url": broker.url, "occupancy": True, "topic_prefix": "site1"}
            ],
            "rules": [{**RULES[0], "channels": ["ha"]}],
        }
        _, site = site_with_alerts(tmp_path, alerts)
        got: list[tuple[str, dict, bool]] = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload), m.retain))
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("site1/#", qos=1)
        sub.loop_start()
        time.sleep(0.3)
        try:
            with connect(f"duckdb:///{tmp_path / 'w.duckdb'}", site) as wh:
                wh.require_setup()
                rows = pl.concat(
                    [
                        person("CAM01", 7, "Z04", s(0), 5),
                        person("CAM01", 1, "Z01", s(0), 5),
                        person("CAM01", 2, "Z01", s(0), 5, motion=0.01),
                    ]
                )
                wh.append_batch("b1", rows.drop("batch_id"), source="stream")
                live = LiveAlerts(site)
                alert_id = live.evaluate(wh).raised[0]
                deliver_pending(wh, site)
                store.acknowledge(wh, alert_id, "lead", "sent the robot cell operator")
                deliver_pending(wh, site)
                store.resolve(wh, alert_id, "lead", "area cleared")
                deliver_pending(wh, site)
                deliver_pending(wh, site)
                live.close()
            deadline = time.monotonic() + 10
            while len([g for g in got if g[0].endswith("/alerts")]) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            sub.loop_stop()
            sub.disconnect()
        # A client connecting later (Home Assistant after a restart) gets the occupancy at once: retained.
        late: list[tuple[str, bool]] = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_message = lambda _c, _u, m: late.append((m.topic, m.retain))
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("site1/CAM01/+/occupancy", qos=1)
        sub.loop_start()
        deadline = time.monotonic() + 5
        while len(late) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        sub.loop_stop()
        sub.disconnect()
    events = [g[1] for g in got if g[0] == "site1/CAM01/alerts"]
    assert [e["type"] for e in events] == ["new", "update", "end"]
    assert events[0]["after"]["id"] == alert_id and events[0]["after"]["label"] == "restricted_zone_entry"
    assert events[1]["before"]["sightline"]["acknowledged_by"] is None
    assert events[1]["after"]["sightline"]["acknowledged_by"] == "lead"
    assert events[2]["after"]["end_time"] is not None and events[2]["before"]["end_time"] is None
    occupancy = {g[0]: g[1] for g in got if g[0].endswith("/occupancy")}
    assert occupancy["site1/CAM01/Z01/occupancy"] | {"ts": None} == {
        "present": 2,
        "active": 1,
        "idle": 1,
        "ts": None,
    }
    assert occupancy["site1/CAM01/Z04/occupancy"]["present"] == 1
    assert occupancy["site1/CAM01/Z02/occupancy"]["present"] == 0
    assert sorted(late) == [(f"site1/CAM01/{z}/occupancy", True) for z in ("Z01", "Z02", "Z03", "Z04")]


def test_site_config_errors_name_the_key_and_fix(tmp_path):
    def error(alerts: dict) -> str:
        with pytest.raises(SiteConfigError) as exc:
            site_with_alerts(tmp_path, alerts)
        return str(exc.value)

    assert "alerts.rules[0].severity: unknown severity 'high'" in error(
        {"rules": [{"name": "r", "type": "idle", "severity": "high"}]}
    )
    assert "alerts.rules[0].channels[0]: unknown channel (declare it under alerts.channels) 'x'" in error(
        {"rules": [{"name": "r", "type": "idle", "severity": "info", "channels": ["x"]}]}
    )
    assert "alerts.channels[0].url: secrets and webhook URLs do not belong in site.yaml" in error(
        {"channels": [{"name": "h", "type": "webhook", "url": "https://hooks.example/x"}]}
    )
    assert "alerts.channels[0].url_env: 'https://x' is not an environment variable name" in error(
        {"channels": [{"name": "h", "type": "webhook", "url_env": "https://x"}]}
    )
    assert "alerts.rules[0].zones[0]: unknown zone 'Z99'" in error(
        {"rules": [{"name": "r", "type": "idle", "severity": "info", "zones": ["Z99"]}]}
    )
    assert "alerts.rules[0].quiet_hours.start: bad time '25:00'" in error(
        {"rules": [{"name": "r", "type": "idle", "severity": "info", "quiet_hours": {"start": "25:00"}}]}
    )
    assert "alerts.rules[1].name: duplicate id 'r'" in error(
        {"rules": [{"name": "r", "type": "idle", "severity": "info"}] * 2}
    )
    site = load_site()  # the demo site's rules are valid and set the anomaly severities
    assert site.alerts.anomaly_severities()["restricted_zone_entry"] == "critical"


# ------------------------------------------------------------------------------------- batch (marts)

DAY = date(2025, 1, 15)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """CAM01 07:30-10:30 simulated, landed and built on DuckDB and on PostgreSQL."""
    from ingestion.simulate import simulate
    from ingestion.transform import build_marts

    tmp = tmp_path_factory.mktemp("alerts_batch")
    site_path, site = site_with_alerts(
        tmp,
        webhook_alerts(
            ENV,
            [
                {
                    "name": "restricted",
                    "type": "restricted_zone_entry",
                    "severity": "critical",
                    "channels": ["hook"],
                },
                {"name": "idle", "type": "idle", "severity": "warning", "channels": ["hook"]},
                {
                    "name": "after-hours",
                    "type": "after_hours_presence",
                    "severity": "info",
                    "channels": ["hook"],
                },
                {"name": "overflow", "type": "zone_overflow", "severity": "error", "channels": ["hook"]},
                {"name": "down", "type": "camera_down", "severity": "critical", "channels": ["hook"]},
            ],
            rate_limit_per_minute=1000,
        ),
    )
    sim = simulate(
        site,
        start=DAY,
        days=1,
        cameras=["CAM01"],
        fps=1.0,
        noise="realistic",
        seed=5,
        window=(clock(7, 30), clock(10, 30)),
    )
    urls = {"duckdb": f"duckdb:///{tmp / 'w.duckdb'}", "postgres": create_database("sightline_alerts16")}
    try:
        for url in urls.values():
            with connect(url, site) as wh:
                wh.setup()
                for camera_id, day, detections, health in sim.camera_days():
                    wh.replace_partition(camera_id, day, detections, source="simulator", camera_health=health)
            build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
        yield site, urls, site_path
    finally:
        drop_database(urls["postgres"])


PERSON_RULES = ("restricted_zone_entry", "idle", "after_hours_presence")


def assert_visitor_names_the_person(wh, alerts: list[dict]) -> None:
    """An alert about a person names their visitor: the alert's track is one of the visitor's fragments in
    analytics.track_links. Alerts about a zone or a camera name none."""
    links = {
        (r["camera_id"], r["track_id"]): str(r["visitor_id"])
        for r in wh.query("SELECT camera_id, track_id, visitor_id FROM analytics.track_links").to_dicts()
    }
    person = [a for a in alerts if a["alert_type"] in PERSON_RULES]
    assert person, "the fixture raises alerts about people"
    for a in person:
        assert a["visitor_id"] == links.get((a["camera_id"], a["track_id"]), str(a["track_id"])), a
    assert all(a["visitor_id"] is None for a in alerts if a["alert_type"] not in PERSON_RULES)


def test_batch_alerts_agree_and_survive_a_rebuild_with_acknowledgements(built, monkeypatch, capsys):
    from ingestion.transform import build_marts

    site, urls, site_path = built
    receiver = Receiver()
    monkeypatch.setenv(ENV, receiver.url)
    try:
        alerts, anomalies = {}, {}
        for backend, url in urls.items():
            with connect(url, site) as wh:
                result = evaluate_day(wh, site, DAY)
                anomalies[backend] = result.anomalies
                alerts[backend] = store.load_alerts(wh)
        assert anomalies["duckdb"] == anomalies["postgres"] > 0
        keys = ("alert_id", "rule_name", "severity", "started_at", "ended_at", "status")
        assert [tuple(a[k] for k in keys) for a in alerts["duckdb"]] == [
            tuple(a[k] for k in keys) for a in alerts["postgres"]
        ]
        with connect(urls["duckdb"], site) as wh:
            types = wh.query("SELECT anomaly_type, count(*) AS n FROM analytics.anomalies GROUP BY 1").rows()
        by_rule = {
            "excessive_idle": "idle",
            "restricted_zone_entry": "restricted",
            "after_hours_presence": "after-hours",
            "zone_overflow": "overflow",
            "camera_down": "down",
        }
        expected = {by_rule[t]: n for t, n in types if t in by_rule}
        got = {}
        for a in alerts["duckdb"]:
            got[a["rule_name"]] = got.get(a["rule_name"], 0) + 1
        assert got == expected  # one alert per anomaly the rules cover (zone_empty has no rule here)
        with connect(urls["duckdb"], site) as wh:
            assert_visitor_names_the_person(wh, alerts["duckdb"])

        url = urls["duckdb"]
        with connect(url, site) as wh:
            target = alerts["duckdb"][0]["alert_id"]
            store.acknowledge(wh, target, "lead", "checked the camera")
            first = deliver_pending(wh, site)
        assert len(first.sent) == len(alerts["duckdb"]) == len(receiver.requests)
        build_marts(url, DAY, DAY + timedelta(days=1), restate=True, site=site, report_audits=False)
        with connect(url, site) as wh:
            again = evaluate_day(wh, site, DAY)
            after = store.load_alerts(wh)
            second = deliver_pending(wh, site)
            view = wh.query("SELECT count(*) AS n FROM analytics.active_alerts")["n"][0]
        from orchestration.cli import main

        capsys.readouterr()
        assert (
            main(
                [
                    "alerts",
                    "evaluate",
                    "--date",
                    DAY.isoformat(),
                    "--warehouse",
                    url,
                    "--site",
                    str(site_path),
                ]
            )
            == 0
        )
        assert f"-> 0 alerts raised, {len(after)} already known" in capsys.readouterr().out
    finally:
        receiver.close()
    assert again.outcome.raised == [] and len(again.outcome.matched) == len(alerts["duckdb"])
    assert [a["alert_id"] for a in after] == [a["alert_id"] for a in alerts["duckdb"]]
    acked = next(a for a in after if a["alert_id"] == target)
    assert (acked["acknowledged_by"], acked["action_taken"]) == ("lead", "checked the camera")
    assert second.sent == [] and len(receiver.requests) == len(first.sent)
    assert view == sum(a["status"] != "resolved" for a in after)


def test_an_anomaly_the_stream_raised_live_is_the_same_alert(built, tmp_path):
    """Live first, then the day's marts: the batch path finds the live alerts (rule, subject, overlapping
    time) instead of raising them again. Live evaluation here covers the whole landed day at once."""
    site, urls, _ = built
    import shutil

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"  # same file name: SQLMesh's views name the catalog

    shutil.copy(urls["duckdb"].removeprefix("duckdb:///"), url.removeprefix("duckdb:///"))
    with connect(url, site) as wh:
        wh.query("DELETE FROM ops.alert_deliveries")
        wh.query("DELETE FROM ops.alerts")
        lo, _ = site.day_window(DAY)
        wh.query("INSERT INTO ops.live_alert_state VALUES ({p}, {p}, {p})", ["CAM01", lo, lo])
        live = LiveAlerts(site).evaluate(wh)
        raised_live = {a["alert_id"] for a in store.load_alerts(wh, "WHERE rule_name = 'restricted'")}
        before = {a["alert_id"]: a["visitor_id"] for a in store.load_alerts(wh)}
        batch = evaluate_day(wh, site, DAY)
        restricted = store.load_alerts(wh, "WHERE rule_name = 'restricted'")
        # The live path sees raw tracks only (linking runs with the marts): the day's evaluation fills in
        # the visitor of the live alerts it matches (a live alert on a later fragment of a visit is not
        # the visit's alert, whose subject is the entry track: it keeps none).
        assert before and all(v is None for v in before.values())
        matched = [a for a in store.load_alerts(wh) if a["alert_id"] in set(batch.outcome.matched)]
        assert any(a["alert_type"] in PERSON_RULES for a in matched)
        assert_visitor_names_the_person(wh, matched)
    assert live.raised and raised_live
    # Every restricted-zone visit in the marts was already an alert: none is raised a second time.
    assert {a["alert_id"] for a in restricted} == raised_live
    assert set(batch.outcome.matched) & raised_live
