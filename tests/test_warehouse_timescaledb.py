"""The TimescaleDB path of the PostgreSQL backend, against a real server that has the extension.

The server comes from SIGHTLINE_TEST_TIMESCALE_URL (default: a second local cluster on port 5433 with
timescaledb in shared_preload_libraries, e.g. `pg_createcluster 15 tsdb --port 5433 -- --auth=trust`);
every test skips with the reason when that server is unreachable or lacks the extension. Data days are
recent (relative to today) so the policies' background jobs never touch the rows under test.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from ingestion.site import Site, WarehouseSettings
from ingestion.warehouse.postgres import PostgresWarehouse
from tests.test_warehouse import KEY, count, detections, landed

pytestmark = pytest.mark.timescaledb


@pytest.fixture
def recent_day(site: Site):
    return site.local_day(datetime.now(UTC)) - timedelta(days=2)


def test_hypertable_chunks_columnstore_and_policies(timescale_url: str, site: Site):
    # The demo site keeps everything (its days are in 2025); a production site sets a retention period.
    site = replace(site, warehouse=WarehouseSettings(retention_days=90, compress_after_days=7))
    with PostgresWarehouse(timescale_url, site) as wh:
        wh.setup()
        wh.setup()  # idempotent
        assert wh.timescaledb_enabled()
        dims = wh.query(
            "SELECT column_name, time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = 'raw' AND hypertable_name = 'detections'"
        )
        assert dims.rows() == [("ts", timedelta(days=1))]
        settings = wh.query(
            "SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings "
            "WHERE hypertable = 'raw.detections'::regclass"
        )
        assert settings.rows() == [("camera_id", "ts")]
        jobs = wh.query(
            "SELECT proc_name, config::text AS config FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = 'raw' AND hypertable_name = 'detections' ORDER BY proc_name"
        )
        config = dict(jobs.rows())
        assert set(config) == {"policy_compression", "policy_retention"}
        assert f'"{site.warehouse.compress_after_days} days"' in config["policy_compression"]
        assert f'"{site.warehouse.retention_days} days"' in config["policy_retention"]
        # Not partitioned the plain way: no declarative partitions under the hypertable.
        assert (
            wh.query(
                "SELECT count(*) AS n FROM pg_partitioned_table WHERE partrelid = 'raw.detections'::regclass"
            )["n"][0]
            == 0
        )


def test_policies_follow_the_site_config(timescale_url: str, site: Site):
    with PostgresWarehouse(timescale_url, replace(site, warehouse=WarehouseSettings(90, 7))) as wh:
        wh.setup()
    changed = replace(site, warehouse=WarehouseSettings(retention_days=None, compress_after_days=3))
    with PostgresWarehouse(timescale_url, changed) as wh:
        wh.setup()
        jobs = dict(
            wh.query(
                "SELECT proc_name, config::text AS config FROM timescaledb_information.jobs "
                "WHERE hypertable_name = 'detections'"
            ).rows()
        )
        assert set(jobs) == {"policy_compression"} and '"3 days"' in jobs["policy_compression"]


def test_landing_into_compressed_chunks(timescale_url: str, site: Site, recent_day):
    day = recent_day
    window = site.day_window(day)
    first = detections(site, 400, day=day, hour=9)
    with PostgresWarehouse(timescale_url, site) as wh:
        wh.setup()
        assert wh.append_batch("t1", first, source="test", camera_id="CAM01", window=window).landed == 400
        chunks = wh.query(
            "SELECT count(*) AS n FROM (SELECT compress_chunk(c) FROM show_chunks('raw.detections') c) s"
        )["n"][0]
        assert chunks >= 1
        assert wh.query(
            "SELECT bool_and(is_compressed) AS c FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'detections'"
        )["c"][0]
        # New rows plus rows already landed (now inside compressed chunks): the unique key still holds.
        fresh = detections(site, 100, day=day, hour=11)
        result = wh.append_batch(
            "t2", pl.concat([first.slice(0, 25), fresh]), source="test", camera_id="CAM01", window=window
        )
        assert (result.landed, result.rejected) == (100, 25)
        assert count(wh, "raw.detections") == 500
        # Replacing the camera-day deletes from the compressed chunk and lands the new rows, 3 times over.
        replacement = detections(site, 300, day=day, hour=14, seed=5)
        snapshots = []
        for _ in range(3):
            r = wh.replace_partition("CAM01", day, replacement, source="sim")
            assert (r.landed, r.rejected) == (300, 0)
            snapshots.append(landed(wh))
        assert all(s.equals(snapshots[0]) for s in snapshots)
        expected = replacement.with_columns(pl.lit(f"sim:CAM01:{day}").alias("batch_id")).sort(KEY)
        assert snapshots[0].equals(expected)
