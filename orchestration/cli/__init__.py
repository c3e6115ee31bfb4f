"""The `sightline` command line. Each subcommand lives in its own module and imports its work lazily,
so `sightline --help` stays fast and a command pays only for what it uses."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that add subcommands, each exposing `register(subparsers)`; `ingest` ones add to `sightline ingest`.
COMMAND_MODULES = ["simulate", "transform", "stream", "check", "db", "demo", "alerts", "report"]
INGEST_MODULES = ["ingest_detections", "ingest_video"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sightline", description="Sightline camera analytics platform")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest = sub.add_parser("ingest", help="land detections from logs, videos or recorded segments")
    ingest_sub = ingest.add_subparsers(dest="ingest_command", required=True, metavar="SOURCE")
    for name in COMMAND_MODULES:
        _register(name, sub)
    for name in INGEST_MODULES:
        _register(name, ingest_sub)
    return parser


def _register(name: str, subparsers) -> None:
    try:
        module = importlib.import_module(f"orchestration.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"orchestration.cli.{name}":
            return  # that command is not built yet
        raise
    module.register(subparsers)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI user gets one clear line; -v shows the traceback
        if args.verbose:
            raise
        print(f"sightline {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
