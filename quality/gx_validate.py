"""Run expectation suites with Great Expectations 1.x and turn the results into CheckResults.

GX is imported here, inside functions, and only here: importing `quality` (or loading the Dagster
definitions) must not pay its several seconds of import time.

Every dataset is a dataframe batch (pandas, converted from the Arrow-backed polars frame the warehouse
returned), so DuckDB and PostgreSQL share this one code path. Results and suites go into an ephemeral
context; when `docs_dir` is given, a Data Docs site is built there and each result links its page.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from quality.partition import Partition
from quality.results import MAX_OFFENDING_ROWS, CheckResult, jsonable
from quality.suites import Suite

# GX logs its own registration chatter at INFO on import; keep warnings and errors only.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

DOCS_SITE = "sightline"
# Enough unexpected values to show a person; GX counts all of them regardless.
PARTIAL_UNEXPECTED = 20


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # This module sets its own logger to INFO on import (it announces the ephemeral temp docs folder).
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # The ephemeral context comes with a default site in a temp folder; ours is the only one built.
    for name in list(context.variables.data_docs_sites or {}):
        context.delete_data_docs_site(name)
    if docs_dir is not None:
        context.add_data_docs_site(
            DOCS_SITE,
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _offending_rows(frame: pl.DataFrame, indexes: list[int]) -> list[dict[str, Any]]:
    picked = [i for i in indexes if isinstance(i, int) and 0 <= i < frame.height][:MAX_OFFENDING_ROWS]
    if not picked:
        return []
    return [{k: jsonable(v) for k, v in row.items()} for row in frame[picked].to_dicts()]


def _describe_failure(result) -> tuple[str, int]:
    """One line naming the expectation and what it saw, and its unexpected count."""
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format") and v is not None}
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    res = result.result or {}
    unexpected = int(res.get("unexpected_count") or 0)
    if "unexpected_count" in res:
        seen = f"{unexpected} unexpected of {res.get('element_count', '?')} rows"
        sample = res.get("partial_unexpected_list") or []
        if sample:
            seen += f", e.g. {[jsonable(v) for v in sample[:3]]}"
    elif "observed_value" in res:
        seen = f"observed {jsonable(res['observed_value'])}"
    else:
        seen = (
            str(result.exception_info.get("exception_message") or "failed")
            if result.exception_info
            else "failed"
        )
    return f"{cfg.type}({args}): {seen}", unexpected


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


class Validator:
    """One GX context for a run of checks: suites, results and (optionally) a Data Docs site in `docs_dir`.

    Reuse one Validator for all partitions of a run so the Data Docs index lists them all.
    """

    def __init__(self, docs_dir: Path | None = None):
        self.docs_dir = docs_dir
        self.context = _context(docs_dir)
        self.source = self.context.data_sources.add_pandas("sightline")

    def validate(
        self, partition: Partition, datasets: dict[str, pl.DataFrame], suites: list[Suite]
    ) -> list[CheckResult]:
        """Validate each suite against its dataset; one CheckResult per suite, in the order given."""
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.core.run_identifier import RunIdentifier

        context, key = self.context, _slug(partition.key)
        run_id = RunIdentifier(run_name=key, run_time=datetime.now(UTC))
        by_dataset: dict[str, list[Suite]] = {}
        for suite in suites:
            by_dataset.setdefault(suite.dataset, []).append(suite)

        outcome: dict[str, tuple[Any, Any]] = {}
        for dataset, group in by_dataset.items():
            batch = self.source.add_dataframe_asset(f"{dataset}.{key}").add_batch_definition_whole_dataframe(
                key
            )
            definitions = []
            for suite in group:
                # Expectations depend on the partition (the camera's zones, the day's blocks): one suite each.
                # Built whole, then added once: add_expectation one by one re-saves the suite each time.
                expectations = [
                    getattr(gxe, exp.kind)(**exp.kwargs, description=exp.description or None)
                    for exp in suite.expectations(partition)
                ]
                gx_suite = context.suites.add(
                    gx.ExpectationSuite(
                        name=f"{suite.gx_name}.{key}",
                        expectations=expectations,
                        meta={"notes": suite.description},
                    )
                )
                definitions.append(
                    context.validation_definitions.add(
                        gx.ValidationDefinition(name=gx_suite.name, data=batch, suite=gx_suite)
                    )
                )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"{dataset}.{key}",
                    validation_definitions=definitions,
                    result_format={
                        "result_format": "SUMMARY",
                        "partial_unexpected_count": PARTIAL_UNEXPECTED,
                    },
                )
            )
            run = checkpoint.run(batch_parameters={"dataframe": datasets[dataset].to_pandas()}, run_id=run_id)
            for identifier, suite_result in run.run_results.items():
                outcome[suite_result.suite_name] = (identifier, suite_result)

        docs_urls = self._build_docs([identifier for identifier, _ in outcome.values()])
        return [
            self._result(
                suite, partition, datasets[suite.dataset], *outcome[f"{suite.gx_name}.{key}"], docs_urls
            )
            for suite in suites
        ]

    def _build_docs(self, identifiers: list) -> dict[Any, str]:
        if self.docs_dir is None or not identifiers:
            return {}
        self.context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=identifiers)
        urls = {}
        for identifier in identifiers:
            found = self.context.get_docs_sites_urls(resource_identifier=identifier, site_name=DOCS_SITE)
            if found and found[0].get("site_url"):
                urls[identifier] = found[0]["site_url"]
        return urls

    @staticmethod
    def _result(
        suite: Suite, partition: Partition, frame: pl.DataFrame, identifier, suite_result, docs_urls: dict
    ) -> CheckResult:
        failed, unexpected, rows = [], 0, []
        for r in suite_result.results:
            if r.success:
                continue
            line, count = _describe_failure(r)
            failed.append(line)
            unexpected += count
            if not rows:
                indexes = (r.result or {}).get("partial_unexpected_index_list") or []
                rows = _offending_rows(frame, list(indexes))
        stats = suite_result.statistics
        return CheckResult(
            name=suite.name,
            table=suite.table,
            partition=partition.key,
            passed=bool(suite_result.success),
            severity=suite.severity,
            description=suite.description,
            observed={
                "rows": frame.height,
                "expectations": int(stats["evaluated_expectations"]),
                "failed_expectations": int(stats["unsuccessful_expectations"]),
            },
            failed_expectations=failed,
            unexpected_count=unexpected,
            offending_rows=rows,
            docs_url=docs_urls.get(identifier),
        )
