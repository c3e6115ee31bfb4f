"""Embedded mode: a Dagster home under .dagster_home/ with SQLite storage, so `make demo` and `make ui`
need no server. The repository's dagster.yaml (PostgreSQL storage) is for deployments only.

    python -m orchestration.embedded      # writes .dagster_home/dagster.yaml, prints the folder
    DAGSTER_HOME=$PWD/.dagster_home dagster dev
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_HOME = REPO_ROOT / ".dagster_home"

EMBEDDED_CONFIG = """\
# Written by `sightline demo` / `python -m orchestration.embedded`: embedded Dagster, SQLite storage under
# this folder (Dagster's default when no storage is configured). Deployments use the repository's
# dagster.yaml (PostgreSQL) instead.
concurrency:
  pools:
    # DuckDB allows one writing process per file: every step that opens the warehouse is in pool
    # "warehouse", so at most one runs at a time and concurrent runs queue instead of failing on the lock.
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def ensure_home(home: str | Path | None = None) -> Path:
    """Create the embedded Dagster home (idempotent) and return its absolute path."""
    path = Path(home or EMBEDDED_HOME).resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() or config.read_text() != EMBEDDED_CONFIG:
        config.write_text(EMBEDDED_CONFIG)
    return path


def embedded_instance(home: str | Path | None = None):
    """The Dagster instance of the embedded home (what `make ui` shows)."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(ensure_home(home)))


if __name__ == "__main__":
    print(ensure_home(sys.argv[1] if len(sys.argv) > 1 else None))
