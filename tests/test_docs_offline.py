"""The check results pages work with no network (issue 15, item 2): Great Expectations' Data Docs load
their CSS and JavaScript from CDNs and fill the results list with that JavaScript, so offline the list is
empty. `sightline check` and the Dagster checks link our own pages instead (quality/docs_site.py); here a
real run of the checks builds them, nothing in them points off the machine, and headless Chromium with
every network request refused renders the full results list.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from ingestion.simulate import simulate
from ingestion.site import Site
from ingestion.transform import build_marts
from ingestion.warehouse import connect
from quality import docs_index, run_checks
from quality.docs_site import publish

DAY = date(2025, 1, 15)
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
ROW = re.compile(
    r'<tr class="result"><td><span class="status (\w+)">\w+</span></td><td><a href="([^"]+)">([^<]+)</a>'
    r"</td><td><code>[^<]+</code></td><td>([^<]+)</td>"
)
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(""", re.I)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, site: Site):
    """CAM01's day landed and built; the checks run for CAM01 and CAM02, which landed nothing (its raw
    checks fail), so the pages show passes and failures."""
    tmp = tmp_path_factory.mktemp("docs_offline")
    url = f"duckdb:///{tmp / 'warehouse.duckdb'}"
    sim = simulate(site, start=DAY, days=1, cameras=["CAM01"], fps=0.5, noise="realistic", seed=3)
    with connect(url, site) as wh:
        wh.setup()
        for camera_id, d, detections, health in sim.camera_days():
            wh.replace_partition(camera_id, d, detections, source="simulator", camera_health=health)
    build_marts(url, DAY, DAY + timedelta(days=1), site=site, report_audits=False)
    docs = tmp / "gx_docs"
    results = run_checks(url, DAY, site, cameras=["CAM01", "CAM02"], docs=docs)
    return docs, results


def _rows(page: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(check, partition) -> (status, link) of every row of the results page."""
    found = ROW.findall(page.read_text())
    return {(html.unescape(n), html.unescape(p)): (s, html.unescape(link)) for s, link, n, p in found}


def test_every_result_has_its_own_page_listed_on_the_index(checked):
    docs, results = checked
    assert any(not r.passed for r in results) and any(r.passed for r in results)
    index = docs_index(docs)
    assert index == docs / "results.html" and index.is_file()
    rows = _rows(index)
    assert set(rows) == {(r.name, r.partition) for r in results}
    for r in results:
        status, link = rows[(r.name, r.partition)]
        assert status == r.status
        page = Path(r.docs_url.removeprefix("file://"))
        assert page.is_file() and page == (docs / link).resolve()
        text = page.read_text()
        for line in r.failed_expectations:
            assert html.escape(line) in text
    # Failures first: no passing row above a failing one.
    statuses = [s for s, _ in _rows(index).values()]
    assert statuses.index("pass") > max(i for i, s in enumerate(statuses) if s != "pass")
    # GX's own page of a validation is still linked, for the per-expectation detail.
    gx = next(r for r in results if r.observed.get("expectations"))
    assert "Great Expectations' page</a>" in Path(gx.docs_url.removeprefix("file://")).read_text()


def test_pages_reference_nothing_off_the_machine(checked):
    docs, _ = checked
    pages = [docs / "results.html", *(docs / "results").glob("*/*.html")]
    assert len(pages) > 1
    for page in pages:
        text = page.read_text()
        assert "<script" not in text.lower(), page
        assert not EXTERNAL.search(text), f"{page}: {EXTERNAL.search(text).group(0)}"


def test_the_index_keeps_every_partition_and_the_latest_result_wins(checked, tmp_path):
    docs, results = checked
    copy = tmp_path / "docs"
    shutil.copytree(docs, copy)
    flipped = replace(results[0], passed=not results[0].passed, docs_url=None)
    publish(copy, [flipped])
    rows = _rows(copy / "results.html")
    assert set(rows) == {(r.name, r.partition) for r in results}
    assert rows[(flipped.name, flipped.partition)][0] == flipped.status != results[0].status


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_headless_chromium_with_no_network_renders_the_results_list(checked, tmp_path):
    docs, results = checked
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            # No network: every host resolves to nothing and every request goes to a closed proxy port.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--dump-dom",
            docs_index(docs).as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rendered = re.findall(r'<tr class="result">.*?</tr>', dom)
    assert len(rendered) == len(results) > 0
    failing = [r for r in results if not r.passed]
    assert all(f'class="status {r.status}"' in dom for r in failing)
