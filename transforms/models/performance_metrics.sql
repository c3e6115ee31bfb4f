MODEL (
  name analytics.performance_metrics,
  kind VIEW,
  grain (grain, period_start, scope, camera_id, zone_id),
  /* no audits of its own: every row is a row of one of the four tables, audited there; an audit of this view
     would scan their whole history on every build */
  ignored_rules (nomissingaudits),
  description 'DEPRECATED, kept for one release: the four grains of analytics.zone_hourly, analytics.camera_hourly, analytics.daily_zone_stats and analytics.daily_camera_stats in one view, told apart by grain (hour | day) and scope (zone | camera). Never sum a column over it without filtering on both grain and scope: every session would count four times. Read the four tables instead.',
  column_descriptions (
    grain = 'hour | day (site-local day)',
    period_start = 'period start (UTC)',
    period_end = 'period end (UTC, exclusive)',
    local_date = 'site-local day of the period',
    scope = 'zone | camera',
    camera_id = 'camera (analytics.cameras)',
    zone_id = 'zone (analytics.zones); null for scope camera',
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
    camera_uptime = 'share of the period''s health windows in which the camera delivered frames',
    camera_name = 'camera name from the site config',
    zone_name = 'zone name from the site config; null for scope camera'
  )
);

SELECT
  'hour' AS grain, hour_start AS period_start, hour_end AS period_end, local_date, 'zone' AS scope, camera_id,
  zone_id, scheduled_seconds, occupied_seconds, occupied_working_seconds, person_seconds, utilization,
  active_seconds, idle_seconds, productivity, idle_ratio, sessions, mean_dwell_seconds, camera_uptime,
  camera_name, zone_name
FROM analytics.zone_hourly
UNION ALL
SELECT
  'hour', hour_start, hour_end, local_date, 'camera', camera_id, CAST(NULL AS VARCHAR), scheduled_seconds,
  occupied_seconds, occupied_working_seconds, person_seconds, utilization, active_seconds, idle_seconds,
  productivity, idle_ratio, sessions, mean_dwell_seconds, camera_uptime, camera_name, CAST(NULL AS VARCHAR)
FROM analytics.camera_hourly
UNION ALL
SELECT
  'day', z.day_start, z.day_end, z.local_date, 'zone', z.camera_id, z.zone_id, z.scheduled_seconds,
  z.occupied_seconds, z.occupied_working_seconds, z.person_seconds, z.utilization, z.total_active_seconds,
  z.total_idle_seconds, z.productivity, z.idle_ratio, z.sessions, z.mean_dwell_seconds, c.uptime, z.camera_name,
  z.zone_name
FROM analytics.daily_zone_stats AS z
LEFT JOIN analytics.daily_camera_stats AS c ON c.local_date = z.local_date AND c.camera_id = z.camera_id
UNION ALL
SELECT
  'day', day_start, day_end, local_date, 'camera', camera_id, CAST(NULL AS VARCHAR), scheduled_seconds,
  occupied_seconds, occupied_working_seconds, person_seconds, utilization, total_active_seconds,
  total_idle_seconds, productivity, idle_ratio, sessions, mean_dwell_seconds, uptime, camera_name,
  CAST(NULL AS VARCHAR)
FROM analytics.daily_camera_stats
