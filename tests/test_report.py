"""The daily report renders as one self-contained page whose numbers are the marts', on DuckDB and
PostgreSQL; the PDF opens with the expected number of pages (tests/workforce_data.py has the data)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from statistics import median

import numpy as np
import pytest
from test_transforms import read
from workforce_data import CONSTRUCTED_DAY, OVERRIDE_DAY, REGULAR_DAY, UNREGISTERED

from ingestion.warehouse import connect
from orchestration.report import (
    build_daily_report,
    camera_background,
    chromium,
    expected_pages,
    render_html,
    write_report,
)

# Module fixtures build the marts on both backends (PostgreSQL included): the whole-pipeline tier.
pytestmark = [pytest.mark.pipeline, pytest.mark.postgres]

BACKENDS = ("duckdb", "postgres")


class _Page(HTMLParser):
    """Collects tags, external references and the embedded report data; fails on unbalanced sections."""

    def __init__(self):
        super().__init__()
        self.tags, self.external, self.data, self._in_data, self.open_sections = [], [], "", False, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag == "link" or (tag == "script" and "src" in attrs):
            self.external.append(tag)
        self._in_data = tag == "script" and attrs.get("id") == "report-data"
        self.open_sections += tag == "section"

    def handle_endtag(self, tag):
        self._in_data = False if tag == "script" else self._in_data
        self.open_sections -= tag == "section"

    def handle_data(self, data):
        if self._in_data:
            self.data += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def reports(workforce):
    out = {}
    for backend, url in workforce.urls.items():
        with connect(url, workforce.site) as wh:
            # Charts are drawn for one page only: they take most of the time and hold no number tested.
            out[backend] = {
                d: build_daily_report(wh, workforce.site, d, charts=backend == "duckdb" and d == REGULAR_DAY)
                for d in (OVERRIDE_DAY, REGULAR_DAY, CONSTRUCTED_DAY)
            }
    return out


def test_report_is_one_self_contained_page(reports):
    text = render_html(reports["duckdb"][REGULAR_DAY])
    page = _parse(text)
    assert page.open_sections == 0 and page.tags.count("section") == expected_pages(text) == 5
    assert not page.external, page.external  # no CDN, no linked file: it can be mailed as is
    assert (
        "svg" in page.tags and page.tags.count("img") == 4
    )  # block and occupancy SVGs, a heatmap per camera
    assert json.loads(page.data)["date"] == REGULAR_DAY.isoformat()


@pytest.mark.parametrize("backend", BACKENDS)
def test_report_numbers_equal_the_marts(workforce, reports, backend):
    url = workforce.urls[backend]
    for day, report in reports[backend].items():
        data = json.loads(_parse(render_html(report)).data)
        kpis = {k["name"]: k for k in data["kpis"]}
        zones = read(
            url,
            f"SELECT * FROM analytics.daily_zone_stats WHERE local_date = '{day}' "
            "AND zone_type IN ('work_area', 'inspection')",
        )
        active, idle = zones["total_active_seconds"].sum(), zones["total_idle_seconds"].sum()
        expected_productivity = active / (active + idle) if active + idle else None
        assert kpis["productivity"]["value"] == pytest.approx(expected_productivity)
        all_zones = read(
            url, f"SELECT SUM(sessions) AS n FROM analytics.daily_zone_stats WHERE local_date = '{day}'"
        )
        assert kpis["sessions"]["value"] == all_zones["n"][0]
        anomalies = read(url, f"SELECT COUNT(*) AS n FROM analytics.anomalies WHERE local_date = '{day}'")
        assert kpis["anomalies"]["value"] == anomalies["n"][0]
        workers = read(url, f"SELECT COUNT(*) AS n FROM analytics.worker_daily WHERE local_date = '{day}'")
        assert kpis["identified_workers"]["value"] == workers["n"][0]
        blocks = read(
            url,
            f"SELECT index_number, completion_status, productivity_score, overrun_seconds "
            f"FROM analytics.index_records WHERE date = '{day}' ORDER BY index_number",
        )
        assert [(b["index_number"], b["completion_status"]) for b in data["blocks"]] == [
            (r[0], r[1]) for r in blocks.iter_rows()
        ]
        for got, row in zip(data["blocks"], blocks.iter_rows(named=True), strict=True):
            assert got["productivity_score"] == pytest.approx(row["productivity_score"])
            assert got["overrun_seconds"] == pytest.approx(row["overrun_seconds"])
        on_time = (blocks["completion_status"] == "on_time").sum() / blocks.height
        assert kpis["blocks_on_time"]["value"] == pytest.approx(on_time)

    # Feb 3 against its previous workdays (Jan 31 and the 4-block override day Jan 30).
    data = json.loads(_parse(render_html(reports[backend][CONSTRUCTED_DAY])).data)
    assert data["history"] == [REGULAR_DAY.isoformat(), OVERRIDE_DAY.isoformat()]
    past = read(
        url,
        f"SELECT index_number, productivity_score FROM analytics.index_records "
        f"WHERE date IN ('{REGULAR_DAY}', '{OVERRIDE_DAY}') AND productivity_score IS NOT NULL",
    )
    for index_number, values in past.group_by("index_number").agg("productivity_score").iter_rows():
        assert data["block_median"][str(index_number)] == pytest.approx(median(values))
    kpis = {k["name"]: k for k in data["kpis"]}
    assert kpis["productivity"]["median_7"] == pytest.approx(median(kpis["productivity"]["history"]))


def test_report_recommendations_name_what_the_marts_show(reports):
    recs = reports["duckdb"][CONSTRUCTED_DAY].recommendations
    assert any(r.startswith("CAM01 delivered no frames") for r in recs), recs  # only CAM02 had data
    assert any(UNREGISTERED in r and "not in the registry" in r for r in recs), recs
    override = render_html(reports["duckdb"][OVERRIDE_DAY])
    assert "stock-take" in override and "4 index blocks" in override


def test_reports_agree_across_backends(reports):
    a = reports["duckdb"][REGULAR_DAY].data()
    b = reports["postgres"][REGULAR_DAY].data()
    assert a["recommendations"] == b["recommendations"]
    for ka, kb in zip(a["kpis"], b["kpis"], strict=True):
        assert ka["value"] == pytest.approx(kb["value"]), ka["name"]


def test_heatmap_background_is_the_cameras_view(workforce, tmp_path):
    site = workforce.site
    camera = site.camera("CAM01")
    simulated = camera_background(site, camera, tmp_path)
    assert simulated.shape == (camera.height, camera.width, 3) and simulated.std() > 0
    kept = np.zeros((camera.height // 2, camera.width // 2, 3), np.uint8)
    kept[:, :, 2] = 200  # a red frame (BGR) kept by the video ingestion
    import cv2

    cv2.imwrite(str(tmp_path / "CAM01.png"), kept)
    got = camera_background(site, camera, tmp_path)
    assert got.shape == (camera.height, camera.width, 3) and (got[..., 0] == 200).all()  # as RGB


@pytest.mark.skipif(chromium() is None, reason="no headless Chromium (apt-get install chromium)")
def test_pdf_opens_with_one_page_per_section(reports, tmp_path):
    from pypdf import PdfReader

    report = reports["duckdb"][REGULAR_DAY]
    files = write_report(report, tmp_path, pdf=True)
    reader = PdfReader(str(files.pdf))
    assert len(reader.pages) == expected_pages(files.html.read_text())
    assert "daily report" in reader.pages[0].extract_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_weekly_and_monthly_reports_equal_the_rollups(workforce, backend):
    from orchestration.report import build_period_report, render_period_html

    url = workforce.urls[backend]
    with connect(url, workforce.site) as wh:
        week = build_period_report(wh, workforce.site, "week", REGULAR_DAY, charts=False)
        month = build_period_report(wh, workforce.site, "month", CONSTRUCTED_DAY, charts=False)
    assert (week.start.isoformat(), week.end.isoformat()) == ("2025-01-27", "2025-02-03")
    for report in (week, month):
        data = json.loads(_parse(render_period_html(report)).data)
        rollup = read(
            url,
            f"SELECT zone_id, days, sessions, productivity FROM analytics.zone_period_stats "
            f"WHERE grain = '{report.grain}' AND period_start = '{report.start}' ORDER BY zone_id",
        )
        assert [(z["zone_id"], z["days"], z["sessions"]) for z in data["zones"]] == [
            (r[0], r[1], r[2]) for r in rollup.iter_rows()
        ]
        blocks = read(
            url,
            f"SELECT index_number, completion_status FROM analytics.index_records "
            f"WHERE date >= '{report.start}' AND date < '{report.end}'",
        )
        for b in data["blocks"]:
            mine = blocks.filter(blocks["index_number"] == b["index_number"])
            assert b["days"] == mine.height
            assert b["overrun"] == (mine["completion_status"] == "overrun").sum()
            assert b["delayed"] == (mine["completion_status"] == "delayed").sum()
    # Feb: only the constructed day, whose first block started late and whose last one overran.
    assert [(b["index_number"], b["delayed"], b["overrun"]) for b in month.data()["blocks"]][0] == (1, 1, 0)
