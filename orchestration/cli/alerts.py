"""`sightline alerts`: list, acknowledge and resolve alerts; raise them from a day's marts; deliver them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime

from orchestration.cli.options import add_site_option, add_warehouse_option

EPILOG = """\
Rules and channels live in site.yaml (`alerts:`); channel secrets come from the environment variables they
name. Live alerts are raised by `sightline stream`; `evaluate` turns a built day's anomalies into alerts;
`deliver` sends what is pending (the Dagster sensor runs the same code), each alert once per channel.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "alerts",
        help="list, acknowledge, resolve, evaluate and deliver alerts",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text, description=help_text)
        add_warehouse_option(q)
        add_site_option(q)
        return q

    q = cmd("list", "list alerts (oldest first)")
    q.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    q.add_argument(
        "--since", type=_iso, help="only alerts started at or after this ISO time (UTC if no offset)"
    )
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=run_list)
    for name, verb in (("ack", "acknowledge"), ("resolve", "resolve")):
        q = cmd(name, f"{verb} an alert (id or a unique prefix of 6+ characters)")
        q.add_argument("id")
        q.add_argument("--by", required=True, help="who")
        q.add_argument("--action", help="what was done")
        q.set_defaults(func=run_ack if name == "ack" else run_resolve)
    q = cmd("evaluate", "raise and auto-resolve alerts from a built day's marts")
    q.add_argument("--date", required=True, type=date.fromisoformat, help="site-local day, YYYY-MM-DD")
    q.set_defaults(func=run_evaluate)
    q = cmd("deliver", "send every pending notification once (retries wait for their backoff)")
    q.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="keep delivering up to this many seconds while retries are pending (0: one pass)",
    )
    q.set_defaults(func=run_deliver)
    q = cmd("test-channel", "send a test notification to one channel (recorded nowhere)")
    q.add_argument("name")
    q.set_defaults(func=run_test_channel)


def _iso(text: str) -> datetime:
    from datetime import UTC

    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an ISO time: {text!r} (e.g. 2025-01-15T08:00:00+07:00)"
        ) from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _open(args: argparse.Namespace):
    from ingestion.site import load_site
    from ingestion.warehouse import connect

    site = load_site(args.site)
    wh = connect(args.warehouse, site)
    wh.require_setup()
    return site, wh


def run_list(args: argparse.Namespace) -> int:
    from ingestion.alerts.store import list_alerts

    site, wh = _open(args)
    with wh:
        frame = list_alerts(wh, args.status, args.since)
    if args.format == "json":
        print(json.dumps(frame.to_dicts(), default=str, indent=1))
        return 0
    if frame.height == 0:
        print("no alerts")
        return 0
    tz = site.tz
    for r in frame.to_dicts():
        started = r["started_at"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        who = r["acknowledged_by"] and f" ack:{r['acknowledged_by']}" or ""
        print(
            f"{r['alert_id'][:10]}  {r['status']:<12} {r['severity']:<8} {r['alert_type']:<22} {started}  "
            f"{r['message']}{who}"
        )
    print(f"{frame.height} alerts (times {site.timezone})")
    return 0


def run_ack(args: argparse.Namespace) -> int:
    from ingestion.alerts.store import acknowledge

    _, wh = _open(args)
    with wh:
        a = acknowledge(wh, args.id, args.by, args.action)
    print(f"alert {a['alert_id']} {a['status']} (acknowledged by {a['acknowledged_by']})")
    return 0


def run_resolve(args: argparse.Namespace) -> int:
    from ingestion.alerts.store import resolve

    _, wh = _open(args)
    with wh:
        a = resolve(wh, args.id, args.by, args.action)
    print(f"alert {a['alert_id']} resolved by {a['resolved_by']}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ingestion.alerts.batch import evaluate_day

    site, wh = _open(args)
    with wh:
        result = evaluate_day(wh, site, args.date)
    o = result.outcome
    print(
        f"{args.date}: {result.anomalies} anomalies -> {len(o.raised)} alerts raised, {len(o.matched)} "
        f"already known, {len(o.auto_resolved) + len(result.cleared)} auto-resolved, {o.suppressed} "
        "suppressed (schedule or cooldown)"
    )
    return 0


def run_deliver(args: argparse.Namespace) -> int:
    import time

    from ingestion.alerts.deliver import deliver_pending

    site, wh = _open(args)
    deadline = time.monotonic() + args.wait
    sent = failed = gave_up = 0
    with wh:
        while True:
            report = deliver_pending(wh, site)
            sent, failed, gave_up = (
                sent + len(report.sent),
                failed + len(report.failed),
                gave_up + len(report.gave_up),
            )
            for alert_id, channel, event, error in report.failed:
                print(f"failed: {alert_id[:10]} -> {channel} ({event}): {error}", file=sys.stderr)
            if not report.pending or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    skipped = sorted(report.not_configured)
    print(
        f"{sent} sent, {failed} failed tries, {gave_up} given up"
        + (f"; not configured (environment variable unset): {', '.join(skipped)}" if skipped else "")
        + ("; more pending (retry backoff or rate limit)" if report.pending else "")
    )
    return 1 if gave_up else 0


def run_test_channel(args: argparse.Namespace) -> int:
    from datetime import UTC

    from ingestion.alerts.channels import channel_settings, send
    from ingestion.alerts.store import config_of
    from ingestion.site import load_site

    site = load_site(args.site)
    channel = config_of(site).channel(args.name)
    now = datetime.now(UTC)
    cam = site.cameras[0]
    alert = {
        "alert_id": "test-" + now.strftime("%Y%m%d%H%M%S"),
        "rule_name": "test-channel",
        "alert_type": "test",
        "severity": "info",
        "status": "open",
        "camera_id": cam.id,
        "zone_id": None,
        "track_id": None,
        "visitor_id": None,
        "worker_id": None,
        "message": f"Test notification from Sightline ({site.name}) to channel {channel.name}",
        "started_at": now,
        "ended_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "action_taken": None,
        "resolved_by": None,
        "resolved_at": None,
        "auto_resolved": False,
        "source": "test",
    }
    result = send(channel, channel_settings(channel), alert, "new", site)
    if result.ok:
        print(f"channel {channel.name} ({channel.type}): delivered (code {result.code})")
        return 0
    print(f"channel {channel.name} ({channel.type}): failed: {result.error}", file=sys.stderr)
    return 1
