"""Vision ingestion: video files, recorded segments and live streams, through a detector and tracker,
into the landing layer (see pipeline.py for the flow and sources.py for timestamps and faults)."""

from ingestion.video.pipeline import IngestReport, VideoPipeline
from ingestion.video.segments import Segment, SegmentError, discover_segments, segment_file_name
from ingestion.video.sources import LiveStreamSource, VideoFileSource, VideoSourceError

__all__ = [
    "IngestReport",
    "LiveStreamSource",
    "Segment",
    "SegmentError",
    "VideoFileSource",
    "VideoPipeline",
    "VideoSourceError",
    "discover_segments",
    "segment_file_name",
]
