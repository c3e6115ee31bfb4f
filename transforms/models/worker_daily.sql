MODEL (
  name analytics.worker_daily,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day_start, batch_size 24, lookback 24),
  grain (local_date, worker_id),
  audits (
    unique_combination_of_columns(columns := (local_date, worker_id)),
    not_null(columns := (local_date, day_start, worker_id, registered, presence_seconds, sessions)),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_range(column := assigned_share, min_v := 0, max_v := 1)
  ),
  description 'One row per site-local day and identified worker (sessions with a worker_id from upstream: badge reader, face recognition, re-id tracker); people without an identity are not here. A worker_id missing from ref.workers is kept with registered = false, never dropped. Sessions count on the day of their entry.',
  column_descriptions (
    local_date = 'site-local day',
    day_start = 'local midnight starting the day (UTC)',
    worker_id = 'identity from the detections (ref.workers when registered)',
    registered = 'whether ref.workers knows the worker_id',
    worker_name = 'name from the registry; null when not registered',
    shift = 'shift from the registry',
    sessions = 'zone visits entering that day',
    zones_visited = 'distinct zones visited',
    first_seen = 'first entry of the day (UTC)',
    last_seen = 'last exit of the day''s visits (UTC)',
    presence_seconds = 'sum of the visits'' durations (time in zones)',
    active_seconds = 'active seconds of the visits',
    idle_seconds = 'idle seconds of the visits',
    productivity = 'active / (active + idle); null without time',
    work_seconds = 'presence in work_area and inspection zones',
    assigned_seconds = 'presence in the zones the registry assigns to the worker; null without assigned zones',
    elsewhere_seconds = 'presence outside the assigned zones; null without assigned zones',
    assigned_share = 'assigned_seconds / presence_seconds; null without assigned zones or presence',
    anomalies = 'anomalies of the worker''s visits (analytics.anomalies.session_id) that day'
  )
);

WITH days AS (
  SELECT local_date, period_start AS day_start FROM @periods() AS p WHERE grain = 'day'
), visits AS (
  SELECT
    s.local_date, s.worker_id, s.session_id, s.zone_id, s.entry_time, s.exit_time,
    s.duration_seconds, s.total_active_seconds, s.total_idle_seconds,
    @at_work(z.zone_type) AS at_work,
    -- ref.workers.zones is a JSON list of ids: an id matches as a quoted string.
    POSITION('"' || s.zone_id || '"' IN w.zones) > 0 AS assigned,
    w.zones IS NOT NULL AND w.zones <> '[]' AS has_assignment
  FROM analytics.sessions AS s
  LEFT JOIN ref.zones AS z ON z.zone_id = s.zone_id
  LEFT JOIN ref.workers AS w ON w.worker_id = s.worker_id
  WHERE s.entry_time >= @batch_start() AND s.entry_time < @batch_end() AND s.worker_id IS NOT NULL
), anomalies AS (
  SELECT v.local_date, v.worker_id, COUNT(*) AS anomalies
  FROM analytics.anomalies AS a
  JOIN visits AS v ON v.session_id = a.session_id
  WHERE a.ts >= @batch_start() - INTERVAL '1 day' AND a.ts < @batch_end() + INTERVAL '1 hour' * @session_lookahead_hours
  GROUP BY v.local_date, v.worker_id
), per_worker AS (
  SELECT
    local_date, worker_id,
    COUNT(*) AS sessions,
    COUNT(DISTINCT zone_id) AS zones_visited,
    MIN(entry_time) AS first_seen,
    MAX(exit_time) AS last_seen,
    SUM(duration_seconds) AS presence,
    SUM(total_active_seconds) AS active,
    SUM(total_idle_seconds) AS idle,
    SUM(CASE WHEN at_work THEN duration_seconds ELSE 0 END) AS work,
    SUM(CASE WHEN assigned THEN duration_seconds ELSE 0 END) AS assigned,
    BOOL_OR(has_assignment) AS has_assignment
  FROM visits
  GROUP BY local_date, worker_id
)
SELECT
  d.local_date,
  d.day_start,
  pw.worker_id,
  w.worker_id IS NOT NULL AS registered,
  w.name AS worker_name,
  w.shift,
  CAST(pw.sessions AS BIGINT) AS sessions,
  CAST(pw.zones_visited AS BIGINT) AS zones_visited,
  pw.first_seen,
  pw.last_seen,
  CAST(pw.presence AS DOUBLE) AS presence_seconds,
  CAST(pw.active AS DOUBLE) AS active_seconds,
  CAST(pw.idle AS DOUBLE) AS idle_seconds,
  CAST(pw.active AS DOUBLE) / NULLIF(CAST(pw.active + pw.idle AS DOUBLE), 0) AS productivity,
  CAST(pw.work AS DOUBLE) AS work_seconds,
  CASE WHEN pw.has_assignment THEN CAST(pw.assigned AS DOUBLE) END AS assigned_seconds,
  CASE WHEN pw.has_assignment THEN CAST(pw.presence - pw.assigned AS DOUBLE) END AS elsewhere_seconds,
  CASE WHEN pw.has_assignment THEN CAST(pw.assigned AS DOUBLE) / NULLIF(CAST(pw.presence AS DOUBLE), 0) END
    AS assigned_share,
  CAST(COALESCE(a.anomalies, 0) AS BIGINT) AS anomalies
FROM per_worker AS pw
JOIN days AS d ON d.local_date = pw.local_date
LEFT JOIN ref.workers AS w ON w.worker_id = pw.worker_id
LEFT JOIN anomalies AS a ON a.local_date = pw.local_date AND a.worker_id = pw.worker_id
