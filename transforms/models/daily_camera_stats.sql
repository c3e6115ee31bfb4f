MODEL (
  name analytics.daily_camera_stats,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day_start, batch_size 24, lookback 24),
  grain (local_date, camera_id),
  audits (
    unique_combination_of_columns(columns := (local_date, camera_id)),
    not_null(columns := (local_date, day_start, day_end, camera_id, camera_name, detections, frames_read, uptime)),
    accepted_range(column := uptime, min_v := 0, max_v := 1),
    accepted_range(column := zoned_share, min_v := 0, max_v := 1),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    day_is_the_sum_of_its_hours(hourly := analytics.camera_hourly, key := camera_id)
  ),
  description 'Grain: one row per site-local day and camera (every camera, every day built): what the camera delivered (frames, drops, decode errors, latency, uptime) and what it saw (detections, tracks, distinct people, sessions, dwell, active and idle time, occupancy, utilization, anomalies). The day grain of analytics.camera_hourly: its counts and seconds are the sums of the day''s hours.',
  column_descriptions (
    local_date = 'site-local day',
    day_start = 'local midnight starting the day (UTC)',
    camera_id = 'camera (analytics.cameras)',
    camera_name = 'camera name from the site config',
    detections = 'detections landed for the day',
    tracks = 'distinct tracker ids (track fragments: a person the tracker broke in three counts three; people are unique_visitors)',
    zoned_share = 'share of detections inside a zone; null without detections',
    frames_read = 'frames read (raw.camera_health)',
    frames_processed = 'frames processed',
    frames_dropped = 'frames dropped',
    decode_errors = 'decode errors',
    latency_ms_mean = 'mean processing latency over the health windows, ms',
    latency_ms_p95_max = 'worst 10 s window p95 processing latency, ms',
    uptime = 'share of the day''s 10 s health windows in which the camera delivered frames',
    sessions = 'sessions entering that day',
    total_dwell_seconds = 'sum of session durations',
    total_active_seconds = 'active seconds of the sessions',
    total_idle_seconds = 'idle seconds of the sessions',
    productivity = 'active / (active + idle); null without sessions',
    anomalies = 'anomalies of the camera (its zones included) that day',
    day_end = 'local midnight ending the day (UTC, exclusive)',
    scheduled_seconds = 'scheduled working time of the day (breaks excluded)',
    occupied_seconds = 'time with at least one person in any zone of the camera',
    occupied_working_seconds = 'occupied time inside scheduled working time',
    person_seconds = 'sum over people of time present in the camera''s zones',
    utilization = 'occupied_working_seconds / scheduled_seconds; null on days off',
    idle_ratio = 'idle / (active + idle); null without sessions',
    mean_dwell_seconds = 'mean session duration; null without sessions',
    unique_visitors = 'distinct people present in any zone of the camera at some moment of the day (worker_id when known, else the visitor: the track fragments of one person, linked by analytics.track_links)'
  )
);

WITH days AS (
  SELECT local_date, period_start AS day_start, period_end AS day_end FROM @periods() AS p WHERE grain = 'day'
), det AS (
  /* Per track first (a hash aggregate), then per camera: a COUNT(DISTINCT track_id) over the day's
     detections would sort them all on PostgreSQL (as in heatmap_hourly). */
  SELECT
    local_date, camera_id,
    CAST(SUM(samples) AS BIGINT) AS detections,
    COUNT(track_id) AS tracks,
    CAST(SUM(zoned) AS BIGINT) AS zoned
  FROM (
    SELECT local_date, camera_id, track_id, COUNT(*) AS samples,
           SUM(CASE WHEN zone_id IS NOT NULL THEN 1 ELSE 0 END) AS zoned
    FROM staging.stg_detections
    WHERE ts >= @batch_start() AND ts < @batch_end()
    GROUP BY local_date, camera_id, track_id
  ) AS per_track
  GROUP BY local_date, camera_id
), health AS (
  SELECT
    @local_date(window_start) AS local_date, camera_id,
    SUM(frames_read) AS frames_read,
    SUM(frames_processed) AS frames_processed,
    SUM(frames_dropped) AS frames_dropped,
    SUM(decode_errors) AS decode_errors,
    AVG(latency_ms_mean) AS latency_ms_mean,
    MAX(latency_ms_p95) AS latency_ms_p95_max,
    COUNT(DISTINCT CASE WHEN frames_read > 0 THEN @health_window(window_start) END) AS windows_up
  FROM raw.camera_health
  WHERE window_start >= @batch_start() AND window_start < @batch_end()
  GROUP BY 1, 2
), ses AS (
  SELECT
    local_date, camera_id, COUNT(*) AS sessions, SUM(duration_seconds) AS dwell,
    SUM(total_active_seconds) AS active, SUM(total_idle_seconds) AS idle
  FROM analytics.sessions
  WHERE entry_time >= @batch_start() AND entry_time < @batch_end()
  GROUP BY local_date, camera_id
), presence AS (
  /* the day is the sum of its hours (shared with daily_zone_stats: transforms/macros/sightline.py) */
  SELECT * FROM @day_sums_of_hours(analytics.camera_hourly, camera_id) AS dp
), people AS (
  SELECT * FROM @people_present(day, camera) AS pp
), anom AS (
  SELECT local_date, camera_id, COUNT(*) AS anomalies
  FROM analytics.anomalies
  WHERE ts >= @batch_start() AND ts < @batch_end()
  GROUP BY local_date, camera_id
)
SELECT
  d.local_date,
  d.day_start,
  c.camera_id,
  c.name AS camera_name,
  CAST(COALESCE(det.detections, 0) AS BIGINT) AS detections,
  CAST(COALESCE(det.tracks, 0) AS BIGINT) AS tracks,
  CAST(det.zoned AS DOUBLE) / NULLIF(det.detections, 0) AS zoned_share,
  CAST(COALESCE(h.frames_read, 0) AS BIGINT) AS frames_read,
  CAST(COALESCE(h.frames_processed, 0) AS BIGINT) AS frames_processed,
  CAST(COALESCE(h.frames_dropped, 0) AS BIGINT) AS frames_dropped,
  CAST(COALESCE(h.decode_errors, 0) AS BIGINT) AS decode_errors,
  CAST(h.latency_ms_mean AS DOUBLE) AS latency_ms_mean,
  CAST(h.latency_ms_p95_max AS DOUBLE) AS latency_ms_p95_max,
  @uptime(h.windows_up, d.day_start, d.day_end) AS uptime,
  CAST(COALESCE(s.sessions, 0) AS BIGINT) AS sessions,
  CAST(COALESCE(s.dwell, 0) AS DOUBLE) AS total_dwell_seconds,
  CAST(COALESCE(s.active, 0) AS DOUBLE) AS total_active_seconds,
  CAST(COALESCE(s.idle, 0) AS DOUBLE) AS total_idle_seconds,
  s.active / NULLIF(s.active + s.idle, 0) AS productivity,
  CAST(COALESCE(a.anomalies, 0) AS BIGINT) AS anomalies,
  d.day_end,
  CAST(COALESCE(pr.scheduled_seconds, 0) AS DOUBLE) AS scheduled_seconds,
  CAST(COALESCE(pr.occupied_seconds, 0) AS DOUBLE) AS occupied_seconds,
  CAST(COALESCE(pr.occupied_working_seconds, 0) AS DOUBLE) AS occupied_working_seconds,
  CAST(COALESCE(pr.person_seconds, 0) AS DOUBLE) AS person_seconds,
  pr.occupied_working_seconds / NULLIF(pr.scheduled_seconds, 0) AS utilization,
  s.idle / NULLIF(s.active + s.idle, 0) AS idle_ratio,
  s.dwell / NULLIF(s.sessions, 0) AS mean_dwell_seconds,
  CAST(COALESCE(pp.unique_visitors, 0) AS BIGINT) AS unique_visitors
FROM days AS d
CROSS JOIN ref.cameras AS c
LEFT JOIN det ON det.local_date = d.local_date AND det.camera_id = c.camera_id
LEFT JOIN health AS h ON h.local_date = d.local_date AND h.camera_id = c.camera_id
LEFT JOIN ses AS s ON s.local_date = d.local_date AND s.camera_id = c.camera_id
LEFT JOIN anom AS a ON a.local_date = d.local_date AND a.camera_id = c.camera_id
LEFT JOIN presence AS pr ON pr.local_date = d.local_date AND pr.camera_id = c.camera_id
LEFT JOIN people AS pp ON pp.period_start = d.day_start AND pp.camera_id = c.camera_id
