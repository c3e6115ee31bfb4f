MODEL (
  name analytics.performance_metrics,
  kind INCREMENTAL_BY_TIME_RANGE (time_column period_start, batch_size 24, lookback 24),
  grain (grain, period_start, scope, camera_id, zone_id),
  audits (
    unique_combination_of_columns(columns := (grain, period_start, scope, camera_id, zone_id)),
    not_null(columns := (grain, period_start, period_end, scope, camera_id, occupied_seconds, sessions)),
    accepted_values(column := grain, is_in := ('hour', 'day')),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_range(column := idle_ratio, min_v := 0, max_v := 1),
    accepted_range(column := camera_uptime, min_v := 0, max_v := 1)
  ),
  description 'Performance per hour and per site-local day (grain), per zone and per camera (scope; camera rows cover all the camera''s zones together): occupied time, utilization of scheduled working time, productivity, idle ratio, sessions, mean dwell and camera uptime. Sessions, dwell and active/idle time count in the period of the session''s entry.',
  column_descriptions (
    grain = 'hour | day (site-local day)',
    period_start = 'period start (UTC)',
    period_end = 'period end (UTC, exclusive)',
    local_date = 'site-local day of the period',
    scope = 'zone | camera',
    camera_id = 'camera (ref.cameras)',
    zone_id = 'zone (ref.zones); null for scope camera',
    scheduled_seconds = 'scheduled working time inside the period (breaks excluded)',
    occupied_seconds = 'time with at least one person present',
    occupied_working_seconds = 'occupied time inside scheduled working time',
    person_seconds = 'sum over people of time present',
    utilization = 'occupied_working_seconds / scheduled_seconds; null without scheduled time',
    active_seconds = 'active seconds of the sessions entering in the period',
    idle_seconds = 'idle seconds of the sessions entering in the period',
    productivity = 'active / (active + idle); null without sessions',
    idle_ratio = 'idle / (active + idle); null without sessions',
    sessions = 'sessions entering in the period',
    mean_dwell_seconds = 'mean session duration; null without sessions',
    camera_uptime = 'share of the period''s health windows in which the camera delivered frames'
  )
);

WITH periods AS (
  SELECT grain, local_date, period_start, period_end FROM @periods() AS p
), scopes AS (
  SELECT 'zone' AS scope, camera_id, zone_id FROM ref.zones
  UNION ALL
  SELECT 'camera' AS scope, camera_id, CAST(NULL AS VARCHAR) AS zone_id FROM ref.cameras
), presence AS (
  SELECT
    p.grain, p.period_start, pr.scope, pr.camera_id, pr.zone_id,
    SUM(CASE WHEN pr.people > 0 THEN ov.us ELSE 0 END) AS occupied_us,
    SUM(CASE WHEN pr.people > 0 AND pr.in_working_time THEN ov.us ELSE 0 END) AS occupied_working_us,
    SUM(CASE WHEN pr.in_working_time THEN ov.us ELSE 0 END) AS scheduled_us,
    SUM(ov.us * pr.people) AS person_us
  FROM periods AS p
  JOIN analytics.zone_presence AS pr
    ON pr.segment_start < p.period_end AND pr.segment_end > p.period_start
  CROSS JOIN LATERAL (
    SELECT @epoch_us(LEAST(pr.segment_end, p.period_end)) - @epoch_us(GREATEST(pr.segment_start, p.period_start)) AS us
  ) AS ov
  WHERE pr.segment_start >= @batch_start() AND pr.segment_start < @batch_end()
  GROUP BY p.grain, p.period_start, pr.scope, pr.camera_id, pr.zone_id
), session_rows AS (
  SELECT 'zone' AS scope, camera_id, zone_id, entry_time, duration_seconds, total_active_seconds, total_idle_seconds
  FROM analytics.sessions
  WHERE entry_time >= @batch_start() AND entry_time < @batch_end()
  UNION ALL
  SELECT 'camera', camera_id, NULL, entry_time, duration_seconds, total_active_seconds, total_idle_seconds
  FROM analytics.sessions
  WHERE entry_time >= @batch_start() AND entry_time < @batch_end()
), session_stats AS (
  SELECT
    p.grain, p.period_start, s.scope, s.camera_id, s.zone_id,
    COUNT(*) AS sessions,
    SUM(s.duration_seconds) AS dwell_seconds,
    SUM(s.total_active_seconds) AS active_seconds,
    SUM(s.total_idle_seconds) AS idle_seconds
  FROM periods AS p
  JOIN session_rows AS s ON s.entry_time >= p.period_start AND s.entry_time < p.period_end
  GROUP BY p.grain, p.period_start, s.scope, s.camera_id, s.zone_id
), health AS (
  SELECT
    p.grain, p.period_start, h.camera_id,
    COUNT(DISTINCT CASE WHEN h.frames_read > 0
      THEN CAST(FLOOR(@epoch_us(h.window_start) / (@health_window_seconds * 1000000)) AS BIGINT) END) AS windows_up
  FROM periods AS p
  JOIN raw.camera_health AS h ON h.window_start >= p.period_start AND h.window_start < p.period_end
  WHERE h.window_start >= @batch_start() AND h.window_start < @batch_end()
  GROUP BY p.grain, p.period_start, h.camera_id
)
SELECT
  p.grain,
  p.period_start,
  p.period_end,
  p.local_date,
  sc.scope,
  sc.camera_id,
  sc.zone_id,
  CAST(COALESCE(pr.scheduled_us, 0) AS DOUBLE) / 1000000 AS scheduled_seconds,
  CAST(COALESCE(pr.occupied_us, 0) AS DOUBLE) / 1000000 AS occupied_seconds,
  CAST(COALESCE(pr.occupied_working_us, 0) AS DOUBLE) / 1000000 AS occupied_working_seconds,
  CAST(COALESCE(pr.person_us, 0) AS DOUBLE) / 1000000 AS person_seconds,
  CAST(pr.occupied_working_us AS DOUBLE) / NULLIF(CAST(pr.scheduled_us AS DOUBLE), 0) AS utilization,
  CAST(COALESCE(ss.active_seconds, 0) AS DOUBLE) AS active_seconds,
  CAST(COALESCE(ss.idle_seconds, 0) AS DOUBLE) AS idle_seconds,
  ss.active_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS productivity,
  ss.idle_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS idle_ratio,
  CAST(COALESCE(ss.sessions, 0) AS BIGINT) AS sessions,
  ss.dwell_seconds / NULLIF(ss.sessions, 0) AS mean_dwell_seconds,
  LEAST(
    CAST(COALESCE(h.windows_up, 0) AS DOUBLE)
      / (CAST(@epoch_us(p.period_end) - @epoch_us(p.period_start) AS DOUBLE) / (@health_window_seconds * 1000000)),
    1.0
  ) AS camera_uptime
FROM periods AS p
CROSS JOIN scopes AS sc
LEFT JOIN presence AS pr
  ON pr.grain = p.grain AND pr.period_start = p.period_start AND pr.scope = sc.scope
  AND pr.camera_id = sc.camera_id AND pr.zone_id IS NOT DISTINCT FROM sc.zone_id
LEFT JOIN session_stats AS ss
  ON ss.grain = p.grain AND ss.period_start = p.period_start AND ss.scope = sc.scope
  AND ss.camera_id = sc.camera_id AND ss.zone_id IS NOT DISTINCT FROM sc.zone_id
LEFT JOIN health AS h
  ON h.grain = p.grain AND h.period_start = p.period_start AND h.camera_id = sc.camera_id
