"""Embedded mode: Dagster on SQLite, no server and no environment. The repository root's dagster.yaml is
the one configuration: `dagster dev` from the root reads it as is (storage in .dagster_home/ under the
working directory); `make demo`, `make ui` and tests get a DAGSTER_HOME folder holding a copy of it with
storage pointed at that folder, so they work from any working directory. Deployments use
deploy/dagster.yaml (PostgreSQL).

    python -m orchestration.embedded [HOME]   # writes HOME/dagster.yaml (HOME: .dagster_home/)
    DAGSTER_HOME=$PWD/.dagster_home dagster dev
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_HOME = REPO_ROOT / ".dagster_home"
ROOT_CONFIG = REPO_ROOT / "dagster.yaml"
# `base_dir: .dagster_home` or `base_dir: .dagster_home/sub`, relative to the working directory.
_RELATIVE_HOME = re.compile(r"(base_dir: )\.dagster_home(/\S*)?$", re.M)


def embedded_config(home: Path) -> str:
    """The root dagster.yaml with its storage folders made `home` (absolute), comments kept."""
    text = ROOT_CONFIG.read_text()
    if not _RELATIVE_HOME.search(text):
        raise ValueError(
            f"{ROOT_CONFIG}: storage: expected `base_dir: .dagster_home`. Fix: restore it from git."
        )
    header = f"# Written by orchestration/embedded.py from {ROOT_CONFIG}; edit that file, not this one.\n"
    return header + _RELATIVE_HOME.sub(
        lambda m: m.group(1) + json.dumps(str(home) + (m.group(2) or "")), text
    )


def ensure_home(home: str | Path | None = None) -> Path:
    """Create the embedded Dagster home (idempotent) and return its absolute path."""
    path = Path(home or EMBEDDED_HOME).resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    wanted = embedded_config(path)
    if not config.exists() or config.read_text() != wanted:
        config.write_text(wanted)
    return path


def embedded_instance(home: str | Path | None = None):
    """The Dagster instance of the embedded home (what `make ui` shows)."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(ensure_home(home)))


if __name__ == "__main__":
    print(ensure_home(sys.argv[1] if len(sys.argv) > 1 else None))
