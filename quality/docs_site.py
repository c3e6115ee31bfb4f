"""The check results pages a person opens: `results.html` (every check's latest result) and one page per
result, in the Data Docs folder next to Great Expectations' own site.

Why our own pages: GX's Data Docs load jQuery, Bootstrap and bootstrap-table from CDNs, and its results
list is filled in by that JavaScript, so on a machine without internet (factory networks often are) the
page is unstyled and the list is empty. These pages are plain HTML with inline CSS: no script, no request
to anywhere. Each links GX's page of the validation, where one was built, for the per-expectation detail.

Results are kept as one JSON file per check and partition (`results/<partition>/<check>.json`, the latest
wins), and the index is rebuilt from all of them, so it lists what every run (CLI or Dagster) checked.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from quality.results import CheckResult

RESULTS_PAGE = "results.html"
RESULTS_DIR = "results"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1d1d1f; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #d0d0d7; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f2f2f6; }
.status { font-weight: 600; border-radius: 3px; padding: 0 .4em; }
.pass { background: #dff3e3; color: #14591f; }
.FAIL { background: #fadbd8; color: #8a1c12; }
.warn { background: #fdf0cf; color: #7a5600; }
.muted { color: #6b6b76; }
code { font-size: .95em; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _write(path: Path, text: str) -> None:
    """Atomically: check ops of concurrent Dagster runs publish into the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _status(status: str) -> str:
    return f'<span class="status {html.escape(status)}">{html.escape(status)}</span>'


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return html.escape(text)


def _result_page(result: dict[str, Any], index: Path, here: Path) -> str:
    rows = [
        ("status", _status(result["status"])),
        ("table", f"<code>{html.escape(result['table'])}</code>"),
        ("partition", html.escape(result["partition"])),
        ("severity", html.escape(result["severity"])),
        ("description", html.escape(result["description"])),
        ("unexpected count", str(result["unexpected_count"])),
    ]
    rows += [(f"observed: {k}", _cell(v)) for k, v in result["observed"].items()]
    body = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    if result["failed_expectations"]:
        body += (
            "<h2>Failed expectations</h2><ul>"
            + "".join(f"<li><code>{html.escape(line)}</code></li>" for line in result["failed_expectations"])
            + "</ul>"
        )
    if result["offending_rows"]:
        columns = list(dict.fromkeys(c for row in result["offending_rows"] for c in row))
        body += (
            "<h2>Offending rows (first few)</h2><table><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            + "</tr>"
            + "".join(
                "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
                for row in result["offending_rows"]
            )
            + "</table>"
        )
    if result.get("gx_page"):
        gx = html.escape(result["gx_page"])
        body += (
            f'<p class="muted">Every expectation of this validation: <a href="{gx}">'
            "Great Expectations' page</a> (it loads its styles and scripts from the internet).</p>"
        )
    back = os.path.relpath(index, here.parent)
    body += f'<p><a href="{html.escape(back)}">All check results</a></p>'
    return _page(f"{result['name']} [{result['partition']}]", body)


def _index_page(results: list[dict[str, Any]], docs: Path) -> str:
    order = {"FAIL": 0, "warn": 1, "pass": 2}
    results = sorted(results, key=lambda r: r["name"])
    results = sorted(results, key=lambda r: r["table"])
    results = sorted(results, key=lambda r: r["partition"], reverse=True)
    results = sorted(results, key=lambda r: order.get(r["status"], 3))
    counts = {s: sum(1 for r in results if r["status"] == s) for s in order}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = "<tr><th>status</th><th>check</th><th>table</th><th>partition</th><th>what failed</th></tr>"
    lines = []
    for r in results:
        link = os.path.relpath(docs / r["page"], docs)
        first = r["failed_expectations"][0] if r["failed_expectations"] else ""
        more = len(r["failed_expectations"]) - 1
        what = html.escape(first) + (f' <span class="muted">(+{more} more)</span>' if more > 0 else "")
        lines.append(
            f'<tr class="result"><td>{_status(r["status"])}</td>'
            f'<td><a href="{html.escape(link)}">{html.escape(r["name"])}</a></td>'
            f"<td><code>{html.escape(r['table'])}</code></td><td>{html.escape(r['partition'])}</td>"
            f"<td>{what}</td></tr>"
        )
    body = (
        f"<p>{len(results)} results: {summary}. The latest result of each check and partition; failures "
        "first.</p>" + f"<table>{head}{''.join(lines)}</table>"
    )
    return _page("Sightline check results", body)


def _load(docs: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((docs / RESULTS_DIR).glob("*/*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):  # being replaced by a concurrent run: its next index has it
            continue
    return found


def publish(docs: Path, results: list[CheckResult]) -> list[CheckResult]:
    """Write a page per result and rebuild the index; return the results linking their own page
    (`docs_url`), which in turn links Great Expectations' page of the validation where there is one."""
    docs = Path(docs)
    index = docs / RESULTS_PAGE
    published = []
    for result in results:
        stem = docs / RESULTS_DIR / _slug(result.partition) / _slug(result.name)
        page = stem.with_suffix(".html")
        record = asdict(result) | {
            "status": result.status,
            "gx_page": result.docs_url,
            "page": str(page.relative_to(docs)),
        }
        _write(page, _result_page(record, index, page))
        _write(stem.with_suffix(".json"), json.dumps(record, default=str, indent=1))
        published.append(replace(result, docs_url=page.resolve().as_uri()))
    if results:
        _write(index, _index_page(_load(docs), docs))
    return published
