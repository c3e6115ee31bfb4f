"""The enumerations of the data contract, defined once.

The site config validates against them (ingestion.site, ingestion.alerts.rules), the SQLMesh models render
them through the macros `@enum_values` / `@enum_value` / `@at_work` (transforms/macros/sightline.py: the
`accepted_values` audits and the literals the models compare with), and the quality suites and reports
import them. Adding a value here is the one edit; a model comparing with an unknown value fails to render.
"""

from __future__ import annotations

ZONE_TYPES = ("work_area", "inspection", "break_area", "restricted")
# Zones where presence counts as work (work_seconds, index block start and end, the report's stations).
WORK_ZONE_TYPES = ("work_area", "inspection")
# analytics.anomalies.anomaly_type.
ANOMALY_TYPES = (
    "excessive_idle",
    "zone_overflow",
    "zone_empty",
    "restricted_zone_entry",
    "after_hours_presence",
    "camera_down",
)
# Alert rule and anomaly severities, lowest first (the order decides "the highest severity").
SEVERITIES = ("info", "warning", "error", "critical")
# analytics.sessions.status.
SESSION_STATUSES = ("completed", "interrupted", "active")
# analytics.index_records.completion_status.
COMPLETION_STATUSES = ("on_time", "delayed", "overrun", "incomplete")

ENUMERATIONS: dict[str, tuple[str, ...]] = {
    "zone_type": ZONE_TYPES,
    "work_zone_type": WORK_ZONE_TYPES,
    "anomaly_type": ANOMALY_TYPES,
    "severity": SEVERITIES,
    "session_status": SESSION_STATUSES,
    "completion_status": COMPLETION_STATUSES,
}
