"""Dagster from the repository root, as a newcomer runs it (issue 15, item 1): in a fresh copy of the
checkout and with no environment at all, `dagster definitions validate` and `dg check defs` (dagster-dg-cli,
in the dev extra) exit 0 on the root dagster.yaml, the embedded configuration; the PostgreSQL one lives in
deploy/dagster.yaml, which compose mounts and the image carries.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.embedded import ensure_home

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAGSTER_HOME_IN_IMAGE = "/opt/dagster/dagster_home"


def _fresh_clone(dest: Path) -> Path:
    """The checkout's files as a clone has them: tracked and not-ignored files, nothing built or cached."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # a file deleted but not yet staged is still listed
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _no_env(home: Path) -> dict[str, str]:
    """Nothing but a PATH to the virtualenv's commands and an empty HOME: no DAGSTER_*, SIGHTLINE_*, PG*."""
    home.mkdir(exist_ok=True)
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home)}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fresh_clone(tmp_path_factory.mktemp("clone"))


def test_definitions_validate_from_a_fresh_clone_with_no_environment(clone, tmp_path):
    out = _run([str(BIN / "dagster"), "definitions", "validate"], clone, _no_env(tmp_path / "home"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "All code locations passed validation" in out.stdout + out.stderr
    # The root dagster.yaml's SQLite storage, under the clone (not a temporary folder, not the checkout).
    assert (clone / ".dagster_home" / "history" / "runs.db").is_file()
    assert not list(clone.glob(".tmp_dagster_home_*")), "dagster's temporary home is removed on exit"


def test_dg_check_defs_from_a_fresh_clone_with_no_environment(clone, tmp_path):
    dg_cli = BIN / "dg"
    assert dg_cli.exists(), "dg is missing: install the dev extra (dagster-dg-cli), `make test` does"
    out = _run([str(dg_cli), "check", "defs"], clone, _no_env(tmp_path / "home"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_root_config_is_embedded_and_a_home_copy_points_storage_at_the_home(tmp_path):
    root = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "postgres" not in root["storage"], "the root dagster.yaml must need no server"
    assert root["storage"]["sqlite"]["base_dir"] == ".dagster_home"

    home = ensure_home(tmp_path / "home")
    assert ensure_home(home) == home  # idempotent
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        # DuckDB has one writer: the `warehouse` pool (and every other pool) admits one step at a time.
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert not instance.telemetry_enabled
        assert Path(instance.root_directory) == home
    finally:
        instance.dispose()
    assert (home / "history" / "runs.db").is_file()
    assert not (tmp_path / ".dagster_home").exists(), "storage must follow the home, not the working dir"


def test_deployment_config_is_under_deploy_and_mounted_by_compose():
    deployed = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert "postgres" in deployed["storage"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    mount = f"./deploy/dagster.yaml:{DAGSTER_HOME_IN_IMAGE}/dagster.yaml:ro"
    for service in ("sightline_code", "dagster_webserver", "dagster_daemon"):
        assert mount in compose[service]["volumes"], service
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"COPY deploy/dagster.yaml {DAGSTER_HOME_IN_IMAGE}/dagster.yaml" in dockerfile
    assert f"DAGSTER_HOME={DAGSTER_HOME_IN_IMAGE}" in dockerfile


def test_make_ui_is_dagster_dev_on_the_root_config():
    """`make ui` and the README say the same thing: `dagster dev` from the root, DAGSTER_HOME unset."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "ui"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    ui = [line for line in out.splitlines() if "dagster dev" in line]
    assert ui and "env -u DAGSTER_HOME" in ui[-1], out
    assert "`make ui` (which is `dagster dev` from the repository root)" in (REPO / "README.md").read_text()
