MODEL (
  name analytics.daily_zone_stats,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day_start, batch_size 24, lookback 24),
  grain (local_date, zone_id),
  audits (
    unique_combination_of_columns(columns := (local_date, zone_id)),
    not_null(columns := (local_date, day_start, day_end, zone_id, zone_name, camera_id, camera_name, sessions, total_dwell_seconds)),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_values(column := zone_type, is_in := @enum_values('zone_type')),
    known_ids(column := zone_id, source := ref.zones),
    forall(criteria := (
      sessions >= 0, unique_visitors >= 0, total_dwell_seconds >= 0, total_active_seconds >= 0,
      total_idle_seconds >= 0, occupied_seconds >= 0, peak_people >= 0, anomalies >= 0,
      ABS(total_dwell_seconds - total_active_seconds - total_idle_seconds) <= 1e-3
    )),
    daily_dwell_matches_sessions,
    day_is_the_sum_of_its_hours(hourly := analytics.zone_hourly, key := zone_id)
  ),
  description 'Grain: one row per site-local day and zone (every zone, every day built): visits, distinct visitors, dwell, active and idle time, occupancy, utilization of working time and anomalies. Sessions count on the day of their entry. The day grain of analytics.zone_hourly: its counts and seconds are the sums of the day''s hours.',
  column_descriptions (
    local_date = 'site-local day',
    day_start = 'local midnight starting the day (UTC)',
    zone_id = 'zone (analytics.zones)',
    zone_name = 'zone name from the site config',
    zone_type = 'work_area | inspection | break_area | restricted',
    camera_id = 'camera of the zone',
    sessions = 'visits entering the zone that day',
    unique_visitors = 'distinct people (worker_id when known, else track)',
    total_dwell_seconds = 'sum of session durations',
    mean_dwell_seconds = 'mean session duration; null without sessions',
    max_dwell_seconds = 'longest session; null without sessions',
    total_active_seconds = 'active seconds of the sessions',
    total_idle_seconds = 'idle seconds of the sessions',
    productivity = 'active / (active + idle); null without sessions',
    occupied_seconds = 'time with at least one person present',
    scheduled_seconds = 'scheduled working time of the day',
    utilization = 'occupied time inside working time / scheduled_seconds; null on days off',
    peak_people = 'most people present at once',
    anomalies = 'anomalies in the zone that day',
    camera_name = 'camera name from the site config',
    day_end = 'local midnight ending the day (UTC, exclusive)',
    occupied_working_seconds = 'occupied time inside scheduled working time',
    person_seconds = 'sum over people of time present',
    idle_ratio = 'idle / (active + idle); null without sessions'
  )
);

WITH day_sessions AS (
  SELECT
    local_date, zone_id,
    COUNT(*) AS sessions,
    COUNT(DISTINCT COALESCE(worker_id, camera_id || ':' || CAST(track_id AS VARCHAR))) AS unique_visitors,
    SUM(duration_seconds) AS total_dwell,
    MAX(duration_seconds) AS max_dwell,
    SUM(total_active_seconds) AS active,
    SUM(total_idle_seconds) AS idle
  FROM analytics.sessions
  WHERE entry_time >= @batch_start() AND entry_time < @batch_end()
  GROUP BY local_date, zone_id
), day_presence AS (
  /* the day is the sum of its hours (every hour of every zone has a row in zone_hourly) */
  SELECT
    d.local_date, d.period_start, d.period_end, zh.zone_id,
    SUM(zh.occupied_seconds) AS occupied_seconds,
    SUM(zh.occupied_working_seconds) AS occupied_working_seconds,
    SUM(zh.scheduled_seconds) AS scheduled_seconds,
    SUM(zh.person_seconds) AS person_seconds
  FROM @periods() AS d
  JOIN analytics.zone_hourly AS zh ON zh.hour_start >= d.period_start AND zh.hour_start < d.period_end
  WHERE d.grain = 'day' AND zh.hour_start >= @batch_start() AND zh.hour_start < @batch_end()
  GROUP BY d.local_date, d.period_start, d.period_end, zh.zone_id
), peaks AS (
  SELECT local_date, zone_id, MAX(people) AS peak_people
  FROM analytics.zone_presence
  WHERE scope = 'zone' AND segment_start >= @batch_start() AND segment_start < @batch_end()
  GROUP BY local_date, zone_id
), day_anomalies AS (
  SELECT local_date, zone_id, COUNT(*) AS anomalies
  FROM analytics.anomalies
  WHERE ts >= @batch_start() AND ts < @batch_end() AND zone_id IS NOT NULL
  GROUP BY local_date, zone_id
)
SELECT
  dp.local_date,
  dp.period_start AS day_start,
  z.zone_id,
  z.name AS zone_name,
  z.zone_type,
  z.camera_id,
  CAST(COALESCE(ds.sessions, 0) AS BIGINT) AS sessions,
  CAST(COALESCE(ds.unique_visitors, 0) AS BIGINT) AS unique_visitors,
  CAST(COALESCE(ds.total_dwell, 0) AS DOUBLE) AS total_dwell_seconds,
  ds.total_dwell / NULLIF(ds.sessions, 0) AS mean_dwell_seconds,
  ds.max_dwell AS max_dwell_seconds,
  CAST(COALESCE(ds.active, 0) AS DOUBLE) AS total_active_seconds,
  CAST(COALESCE(ds.idle, 0) AS DOUBLE) AS total_idle_seconds,
  ds.active / NULLIF(ds.active + ds.idle, 0) AS productivity,
  dp.occupied_seconds,
  dp.scheduled_seconds,
  dp.occupied_working_seconds / NULLIF(dp.scheduled_seconds, 0) AS utilization,
  CAST(COALESCE(pk.peak_people, 0) AS INT) AS peak_people,
  CAST(COALESCE(da.anomalies, 0) AS BIGINT) AS anomalies,
  c.name AS camera_name,
  dp.period_end AS day_end,
  dp.occupied_working_seconds,
  dp.person_seconds,
  ds.idle / NULLIF(ds.active + ds.idle, 0) AS idle_ratio
FROM day_presence AS dp
JOIN ref.zones AS z ON dp.zone_id = z.zone_id
LEFT JOIN ref.cameras AS c ON c.camera_id = z.camera_id
LEFT JOIN day_sessions AS ds ON ds.local_date = dp.local_date AND ds.zone_id = z.zone_id
LEFT JOIN peaks AS pk ON pk.local_date = dp.local_date AND pk.zone_id = z.zone_id
LEFT JOIN day_anomalies AS da ON da.local_date = dp.local_date AND da.zone_id = z.zone_id
