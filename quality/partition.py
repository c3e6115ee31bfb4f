"""What one check run looks at: a site-local day, optionally one camera, and the times derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

from ingestion.site import IndexBlock, Site


@dataclass(frozen=True)
class Partition:
    """A site-local day (and, for per-camera raw partitions, one camera)."""

    site: Site
    day: date
    camera_id: str | None = None

    def __post_init__(self) -> None:
        if self.camera_id is not None:
            self.site.camera(self.camera_id)  # raises naming the known cameras

    @property
    def key(self) -> str:
        # Same text as Dagster's day x camera MultiPartitionKey (dimensions in name order: camera, day).
        return self.day.isoformat() if self.camera_id is None else f"{self.camera_id}|{self.day.isoformat()}"

    @cached_property
    def window(self) -> tuple[datetime, datetime]:
        return self.site.day_window(self.day)

    @cached_property
    def working_intervals(self) -> list[tuple[datetime, datetime]]:
        return self.site.working_intervals(self.day)

    @cached_property
    def index_blocks(self) -> list[IndexBlock]:
        return self.site.index_timeline(self.day)

    def zone_ids(self, camera_id: str | None = None) -> list[str]:
        cam = camera_id or self.camera_id
        return [z.id for z in self.site.zones if cam is None or z.camera == cam]
