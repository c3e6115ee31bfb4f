"""Partitions: the site-local calendar day, and day x camera for the raw assets.

A day partition key is the site-local date (`2025-01-15`); its time window runs from local midnight to the
next local midnight, which is exactly `site.day_window(day)`. Cameras are static partitions read from the
site config when the definitions load, so adding a camera to site.yaml adds its partitions on reload.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from ingestion.site import Site

# The first day anyone may backfill; older days are outside the platform's history.
PARTITIONS_START = "2025-01-01"
DAY = "day"
CAMERA = "camera"


def day_partitions(site: Site) -> dg.DailyPartitionsDefinition:
    # end_offset=1 includes today's (still open) day, so the intraday refresh can target it.
    return dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone=site.timezone, end_offset=1)


def camera_partitions(site: Site) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(site.camera_ids))


def day_camera_partitions(site: Site) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({DAY: day_partitions(site), CAMERA: camera_partitions(site)})


def day_camera_key(day: date, camera_id: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DAY: day.isoformat(), CAMERA: camera_id})


def split_day_camera_key(key: str | dg.MultiPartitionKey) -> tuple[date, str]:
    """(day, camera_id) of a day x camera partition key."""
    dims = (
        key.keys_by_dimension
        if isinstance(key, dg.MultiPartitionKey)
        else dict(zip(sorted((CAMERA, DAY)), key.split("|"), strict=True))
    )
    return date.fromisoformat(dims[DAY]), dims[CAMERA]


def days_of_range(start_key: str, end_key: str) -> list[date]:
    """Every day from start_key to end_key inclusive (partition keys are ISO dates)."""
    first, last = date.fromisoformat(start_key), date.fromisoformat(end_key)
    return [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
