"""Which Dagster executor runs the steps of a run, chosen by configuration, not code.

`SIGHTLINE_EXECUTOR` (read when the definitions load):
- unset: Dagster's default (steps of a run in parallel subprocesses, `multiprocess`);
- `in_process`: every step in the run's own process, one after another (embedded DuckDB, debugging);
- `multiprocess`: one subprocess per step on the run's machine;
- `celery`: every step is a task on a Celery broker, executed by whichever worker takes it
  (`dagster-celery`, the `celery` extra). Workers run `celery -A orchestration.celery_app worker`
  (see `celery_worker_command`) with the same environment, so both sides read the same settings:
  `SIGHTLINE_CELERY_BROKER` (default pyamqp://guest@127.0.0.1:5672//; Redis: redis://host:6379/0),
  `SIGHTLINE_CELERY_BACKEND` (default rpc://; with Redis as broker use the Redis URL here too) and
  `SIGHTLINE_CELERY_QUEUE` (default `dagster`).

Celery needs a persistent Dagster instance (DAGSTER_HOME) reachable by the workers and a PostgreSQL
warehouse: DuckDB allows one writing process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg

EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_BROKER = "pyamqp://guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "rpc://"
DEFAULT_QUEUE = "dagster"


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor SIGHTLINE_EXECUTOR names, or None for Dagster's default."""
    env = os.environ if env is None else env
    choice = env.get("SIGHTLINE_EXECUTOR", "").strip()
    if not choice:
        return None
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise RuntimeError(
                "SIGHTLINE_EXECUTOR=celery: dagster-celery is not installed. Fix: pip install "
                "'sightline[celery]' (dagster-celery matching the installed dagster)"
            ) from exc
        return celery_executor.configured(celery_executor_config(env), name="celery")
    raise ValueError(
        f"SIGHTLINE_EXECUTOR={choice!r}: not an executor. Fix: set it to one of {', '.join(EXECUTORS)} "
        "(or unset it for Dagster's default)"
    )


def celery_executor_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The celery executor's config. A broker/backend URL set in the environment is referenced as
    {"env": NAME}, so its credentials are resolved at run time and never stored with the run."""
    env = os.environ if env is None else env
    broker, backend = "SIGHTLINE_CELERY_BROKER", "SIGHTLINE_CELERY_BACKEND"
    return {
        "broker": {"env": broker} if env.get(broker) else DEFAULT_BROKER,
        "backend": {"env": backend} if env.get(backend) else DEFAULT_BACKEND,
        "config_source": {"task_default_queue": celery_queue(env), "worker_prefetch_multiplier": 1},
    }


def celery_app_args(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Arguments of the workers' Celery app: the same broker, backend and queue as the executor."""
    env = os.environ if env is None else env
    return {
        "broker": env.get("SIGHTLINE_CELERY_BROKER") or DEFAULT_BROKER,
        "backend": env.get("SIGHTLINE_CELERY_BACKEND") or DEFAULT_BACKEND,
        "include": [],
        "config_source": {"task_default_queue": celery_queue(env), "worker_prefetch_multiplier": 1},
    }


def celery_queue(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("SIGHTLINE_CELERY_QUEUE") or DEFAULT_QUEUE


def celery_worker_command(name: str, *, concurrency: int = 1, queue: str | None = None) -> list[str]:
    """The command that starts one Celery worker for Sightline's steps (in the environment it inherits;
    `queue` defaults to this process's SIGHTLINE_CELERY_QUEUE: pass the worker's own when they differ).

    `concurrency` steps at a time (processes); one reserved task at a time (prefetch 1), so a slow video
    step never holds back steps another idle worker could take.
    """
    return [
        sys.executable, "-m", "celery", "-A", "orchestration.celery_app", "worker",
        "--loglevel", "INFO", "--concurrency", str(concurrency), "--prefetch-multiplier", "1",
        "-Q", queue or celery_queue(), "-n", f"{name}@%h",
    ]  # fmt: skip
