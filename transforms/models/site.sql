MODEL (
  name analytics.site,
  kind VIEW,
  grain site_name,
  audits (
    not_null(columns := (site_name, timezone, schedule_summary))
  ),
  description 'Dimension: the site, one row: its name, the IANA time zone every local_date and *_local column is in, the working schedule and the thresholds the anomalies apply. Timestamps without _local are UTC.',
  column_descriptions (
    site_name = 'site name from the site config',
    timezone = 'IANA time zone of the site (local_date, local_hour and *_local columns are in it)',
    schedule_summary = 'workdays and working hours (breaks excluded), local time',
    work_start = 'start of the working day, local HH:MM',
    work_end = 'end of the working day, local HH:MM',
    indices = 'index blocks per workday (analytics.index_blocks)',
    idle_motion_score = 'a detection with a lower motion score counts as idle',
    session_gap_seconds = 'a visit ends when its track is unseen in the zone for longer',
    min_session_seconds = 'a visit whose seen span plus half the dropouts at its edges is shorter is dropped (analytics.sessions)',
    excessive_idle_seconds = 'an idle stretch this long is an excessive_idle anomaly',
    overflow_seconds = 'more than max_workers for this long is a zone_overflow anomaly',
    empty_seconds = 'fewer than min_workers in working time for this long is a zone_empty anomaly'
  )
);

SELECT
  s.name AS site_name,
  s.timezone,
  @schedule_summary() AS schedule_summary,
  s.work_start,
  s.work_end,
  s.indices,
  s.idle_motion_score,
  s.session_gap_seconds,
  s.min_session_seconds,
  s.excessive_idle_seconds,
  s.overflow_seconds,
  s.empty_seconds
FROM ref.site AS s
