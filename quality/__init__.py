"""Data quality: Great Expectations suites as code, SQL reconciliations across tables, and a runner that
returns plain `CheckResult`s. No Dagster here; Great Expectations is imported only when a suite runs.

    from quality import run_checks
    for r in run_checks("duckdb:///data/warehouse.duckdb", date(2025, 1, 15)):
        print(r.name, r.partition, r.status, r.summary())
"""

from quality.results import CRITICAL, WARN, CheckResult
from quality.runner import CHECKS, CheckDef, checks_for, docs_dir, docs_index, run_checks, run_table_checks

__all__ = [
    "CHECKS",
    "CRITICAL",
    "WARN",
    "CheckDef",
    "CheckResult",
    "checks_for",
    "docs_dir",
    "docs_index",
    "run_checks",
    "run_table_checks",
]
