MODEL (
  name analytics.zone_hourly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column hour_start, batch_size 24, lookback 24),
  grain (zone_id, hour_start),
  audits (
    unique_combination_of_columns(columns := (zone_id, hour_start)),
    not_null(columns := (local_date, local_hour, hour_start, hour_end, hour_start_local, zone_id, zone_name, camera_id, camera_name, occupied_seconds, sessions)),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_range(column := idle_ratio, min_v := 0, max_v := 1),
    accepted_range(column := camera_uptime, min_v := 0, max_v := 1),
    accepted_range(column := local_hour, min_v := 0, max_v := 23),
    known_ids(column := camera_id, source := ref.cameras),
    known_ids(column := zone_id, source := ref.zones),
    forall(criteria := (
      hour_end > hour_start,
      occupied_seconds >= 0, person_seconds >= 0, scheduled_seconds >= 0, active_seconds >= 0, idle_seconds >= 0,
      sessions >= 0, mean_dwell_seconds >= 0,
      occupied_seconds <= @seconds_between(hour_start, hour_end) + 1e-3,
      ABS(productivity + idle_ratio - 1) <= 1e-6
    ))
  ),
  description 'Grain: one row per zone and hour (every zone, every hour of every day built). Occupied time, utilization of scheduled working time, productivity, idle ratio, sessions and dwell of the zone in the hour. Sessions, dwell and active/idle time count in the hour of the session''s entry, so every column except the shares and means sums to analytics.daily_zone_stats over a day.',
  column_descriptions (
    local_date = 'site-local day of the hour',
    local_hour = 'site-local hour of day 0..23 of hour_start',
    hour_start = 'hour start (UTC)',
    hour_end = 'hour end (UTC, exclusive)',
    hour_start_local = 'hour start, site-local wall-clock time',
    zone_id = 'zone (analytics.zones)',
    zone_name = 'zone name from the site config',
    zone_type = 'work_area | inspection | break_area | restricted',
    camera_id = 'camera of the zone (analytics.cameras)',
    camera_name = 'camera name from the site config',
    scheduled_seconds = 'scheduled working time inside the hour (breaks excluded)',
    occupied_seconds = 'time with at least one person present',
    occupied_working_seconds = 'occupied time inside scheduled working time',
    person_seconds = 'sum over people of time present',
    utilization = 'occupied_working_seconds / scheduled_seconds; null without scheduled time',
    sessions = 'sessions entering in the hour',
    total_dwell_seconds = 'sum of the durations of the sessions entering in the hour',
    mean_dwell_seconds = 'mean session duration; null without sessions',
    active_seconds = 'active seconds of the sessions entering in the hour',
    idle_seconds = 'idle seconds of the sessions entering in the hour',
    productivity = 'active / (active + idle); null without sessions',
    idle_ratio = 'idle / (active + idle); null without sessions',
    camera_uptime = 'share of the hour''s health windows in which the zone''s camera delivered frames'
  )
);

WITH hours AS (
  SELECT local_date, period_start AS hour_start, period_end AS hour_end FROM @periods() AS p WHERE grain = 'hour'
), presence AS (
  SELECT
    h.hour_start, pr.zone_id,
    SUM(CASE WHEN pr.people > 0 THEN ov.us ELSE 0 END) AS occupied_us,
    SUM(CASE WHEN pr.people > 0 AND pr.in_working_time THEN ov.us ELSE 0 END) AS occupied_working_us,
    SUM(CASE WHEN pr.in_working_time THEN ov.us ELSE 0 END) AS scheduled_us,
    SUM(ov.us * pr.people) AS person_us
  FROM hours AS h
  JOIN analytics.zone_presence AS pr
    ON pr.segment_start < h.hour_end AND pr.segment_end > h.hour_start
  CROSS JOIN LATERAL (
    SELECT @epoch_us(LEAST(pr.segment_end, h.hour_end)) - @epoch_us(GREATEST(pr.segment_start, h.hour_start)) AS us
  ) AS ov
  WHERE pr.scope = 'zone' AND pr.segment_start >= @batch_start() AND pr.segment_start < @batch_end()
  GROUP BY h.hour_start, pr.zone_id
), session_stats AS (
  SELECT
    h.hour_start, s.zone_id,
    COUNT(*) AS sessions,
    SUM(s.duration_seconds) AS dwell_seconds,
    SUM(s.total_active_seconds) AS active_seconds,
    SUM(s.total_idle_seconds) AS idle_seconds
  FROM hours AS h
  JOIN analytics.sessions AS s ON s.entry_time >= h.hour_start AND s.entry_time < h.hour_end
  WHERE s.entry_time >= @batch_start() AND s.entry_time < @batch_end()
  GROUP BY h.hour_start, s.zone_id
), health AS (
  SELECT
    h.hour_start, ch.camera_id,
    COUNT(DISTINCT CASE WHEN ch.frames_read > 0
      THEN CAST(FLOOR(@epoch_us(ch.window_start) / (@health_window_seconds * 1000000)) AS BIGINT) END) AS windows_up
  FROM hours AS h
  JOIN raw.camera_health AS ch ON ch.window_start >= h.hour_start AND ch.window_start < h.hour_end
  WHERE ch.window_start >= @batch_start() AND ch.window_start < @batch_end()
  GROUP BY h.hour_start, ch.camera_id
)
SELECT
  h.local_date,
  CAST(EXTRACT(HOUR FROM @local_ts(h.hour_start)) AS INT) AS local_hour,
  h.hour_start,
  h.hour_end,
  @local_ts(h.hour_start) AS hour_start_local,
  z.zone_id,
  z.name AS zone_name,
  z.zone_type,
  z.camera_id,
  c.name AS camera_name,
  CAST(COALESCE(pr.scheduled_us, 0) AS DOUBLE) / 1000000 AS scheduled_seconds,
  CAST(COALESCE(pr.occupied_us, 0) AS DOUBLE) / 1000000 AS occupied_seconds,
  CAST(COALESCE(pr.occupied_working_us, 0) AS DOUBLE) / 1000000 AS occupied_working_seconds,
  CAST(COALESCE(pr.person_us, 0) AS DOUBLE) / 1000000 AS person_seconds,
  CAST(pr.occupied_working_us AS DOUBLE) / NULLIF(CAST(pr.scheduled_us AS DOUBLE), 0) AS utilization,
  CAST(COALESCE(ss.sessions, 0) AS BIGINT) AS sessions,
  CAST(COALESCE(ss.dwell_seconds, 0) AS DOUBLE) AS total_dwell_seconds,
  ss.dwell_seconds / NULLIF(ss.sessions, 0) AS mean_dwell_seconds,
  CAST(COALESCE(ss.active_seconds, 0) AS DOUBLE) AS active_seconds,
  CAST(COALESCE(ss.idle_seconds, 0) AS DOUBLE) AS idle_seconds,
  ss.active_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS productivity,
  ss.idle_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS idle_ratio,
  LEAST(
    CAST(COALESCE(hl.windows_up, 0) AS DOUBLE)
      / (CAST(@epoch_us(h.hour_end) - @epoch_us(h.hour_start) AS DOUBLE) / (@health_window_seconds * 1000000)),
    1.0
  ) AS camera_uptime
FROM hours AS h
CROSS JOIN ref.zones AS z
LEFT JOIN ref.cameras AS c ON c.camera_id = z.camera_id
LEFT JOIN presence AS pr ON pr.hour_start = h.hour_start AND pr.zone_id = z.zone_id
LEFT JOIN session_stats AS ss ON ss.hour_start = h.hour_start AND ss.zone_id = z.zone_id
LEFT JOIN health AS hl ON hl.hour_start = h.hour_start AND hl.camera_id = z.camera_id
