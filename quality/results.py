"""Plain result objects every check returns, whatever ran it (Great Expectations or a SQL reconciliation).

The CLI prints them, the Dagster asset checks turn them into AssetCheckResults, tests assert on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

CRITICAL = "critical"  # blocks downstream assets of the partition
WARN = "warn"  # shown, never blocks

MAX_OFFENDING_ROWS = 5


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one partition.

    `name` is stable (it is the Dagster asset check name); `table` is the guarded table (`raw.detections`);
    `partition` is the site-local day, or `day|camera` for per-camera raw partitions.
    """

    name: str
    table: str
    partition: str
    passed: bool
    severity: str
    description: str = ""
    observed: dict[str, Any] = field(default_factory=dict)  # small numbers a person can read at a glance
    failed_expectations: list[str] = field(default_factory=list)  # one line each: what failed and how often
    unexpected_count: int = 0
    offending_rows: list[dict[str, Any]] = field(default_factory=list)  # a few, as column -> value
    docs_url: str | None = (
        None  # the Great Expectations Data Docs page of this validation, when one was built
    )

    @property
    def blocking(self) -> bool:
        return self.severity == CRITICAL

    @property
    def status(self) -> str:
        return "pass" if self.passed else ("FAIL" if self.blocking else "warn")

    def summary(self) -> str:
        """One line for logs and tables."""
        if self.passed:
            return "ok"
        first = self.failed_expectations[0] if self.failed_expectations else "failed"
        more = f" (+{len(self.failed_expectations) - 1} more)" if len(self.failed_expectations) > 1 else ""
        return f"{first}{more}"


MAX_CELL_CHARS = 120  # long texts (JSON columns) are cut in offending rows: they are for reading, not loading


def jsonable(value: Any) -> Any:
    """A cell value (Python, numpy or pandas) as something short that JSON and Dagster metadata can hold."""
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict | str):  # numpy scalars
        value = value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 1] + "…"
    return value
