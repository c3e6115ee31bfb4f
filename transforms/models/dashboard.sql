MODEL (
  name analytics.dashboard,
  kind VIEW,
  grain local_date,
  audits (
    unique_values(columns := (local_date)),
    not_null(columns := (local_date, cameras, cameras_up, detections, sessions, anomalies)),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    forall(criteria := (cameras_up <= cameras, critical_anomalies + error_anomalies <= anomalies))
  ),
  description 'Headline numbers for the most recent site-local day that has been built (today while the site is working): people, sessions, productivity, utilization, anomalies and cameras up. One row.',
  column_descriptions (
    local_date = 'the day shown: the latest day in analytics.daily_camera_stats with any data',
    cameras = 'cameras of the site',
    cameras_up = 'cameras that delivered frames in the last hour with data',
    camera_uptime = 'mean camera uptime over the day',
    detections = 'detections landed for the day',
    people_seen = 'distinct people present in any zone',
    sessions = 'zone visits',
    total_dwell_seconds = 'time spent in zones',
    productivity = 'active / (active + idle) over all sessions',
    utilization = 'occupied working time / scheduled working time over work zones',
    anomalies = 'anomalies of the day',
    critical_anomalies = 'anomalies of severity critical only (error ones are in error_anomalies)',
    indices_on_time = 'index blocks completed on time',
    indices_delayed = 'index blocks delayed',
    people_now = 'people present in zones at the end of the latest data',
    as_of = 'the latest detection of the day (UTC)',
    error_anomalies = 'anomalies of severity error',
    as_of_local = 'as_of in site-local wall-clock time',
    timezone = 'the site time zone of local_date and as_of_local'
  )
);

WITH latest AS (
  SELECT MAX(local_date) AS local_date FROM analytics.daily_camera_stats WHERE detections > 0
), cams AS (
  SELECT
    d.local_date,
    COUNT(*) AS cameras,
    AVG(d.uptime) AS camera_uptime,
    SUM(d.detections) AS detections,
    SUM(d.sessions) AS sessions,
    SUM(d.total_dwell_seconds) AS dwell,
    SUM(d.total_active_seconds) AS active,
    SUM(d.total_idle_seconds) AS idle
  FROM analytics.daily_camera_stats AS d
  JOIN latest AS l ON d.local_date = l.local_date
  GROUP BY d.local_date
), last_hour AS (
  SELECT COUNT(DISTINCT p.camera_id) AS cameras_up
  FROM analytics.camera_hourly AS p
  JOIN latest AS l ON p.local_date = l.local_date
  WHERE p.camera_uptime > 0
    AND p.hour_start = (
      SELECT MAX(hour_start) FROM analytics.camera_hourly AS q
      JOIN latest AS l2 ON q.local_date = l2.local_date
      WHERE q.camera_uptime > 0
    )
), people AS (
  SELECT
    COUNT(DISTINCT COALESCE(s.worker_id, s.camera_id || ':' || CAST(s.track_id AS VARCHAR))) AS people_seen,
    MAX(s.exit_time) AS as_of
  FROM analytics.sessions AS s
  JOIN latest AS l ON s.local_date = l.local_date
), now_present AS (
  SELECT COUNT(*) AS people_now
  FROM analytics.sessions AS s
  JOIN latest AS l ON s.local_date = l.local_date
  WHERE s.status = 'active'
), util AS (
  SELECT SUM(CASE WHEN z.zone_type = 'work_area' THEN z.scheduled_seconds END) AS scheduled,
         SUM(CASE WHEN z.zone_type = 'work_area' THEN z.utilization * z.scheduled_seconds END) AS occupied_working
  FROM analytics.daily_zone_stats AS z
  JOIN latest AS l ON z.local_date = l.local_date
), anom AS (
  SELECT COUNT(*) AS anomalies, SUM(CASE WHEN a.severity = 'critical' THEN 1 ELSE 0 END) AS critical,
         SUM(CASE WHEN a.severity = 'error' THEN 1 ELSE 0 END) AS error
  FROM analytics.anomalies AS a
  JOIN latest AS l ON a.local_date = l.local_date
), idx AS (
  SELECT SUM(CASE WHEN completion_status = 'on_time' THEN 1 ELSE 0 END) AS on_time,
         SUM(CASE WHEN completion_status = 'delayed' THEN 1 ELSE 0 END) AS delayed
  FROM analytics.index_records AS i
  JOIN latest AS l ON i.date = l.local_date
)
SELECT
  /* typed where SQLMesh cannot infer it: the Dagster UI shows these types (issue 15) */
  CAST(c.local_date AS DATE) AS local_date,
  CAST(c.cameras AS BIGINT) AS cameras,
  CAST(COALESCE(lh.cameras_up, 0) AS BIGINT) AS cameras_up,
  CAST(c.camera_uptime AS DOUBLE) AS camera_uptime,
  CAST(c.detections AS BIGINT) AS detections,
  CAST(p.people_seen AS BIGINT) AS people_seen,
  CAST(c.sessions AS BIGINT) AS sessions,
  CAST(c.dwell AS DOUBLE) AS total_dwell_seconds,
  CAST(c.active / NULLIF(c.active + c.idle, 0) AS DOUBLE) AS productivity,
  CAST(u.occupied_working / NULLIF(u.scheduled, 0) AS DOUBLE) AS utilization,
  CAST(COALESCE(a.anomalies, 0) AS BIGINT) AS anomalies,
  CAST(COALESCE(a.critical, 0) AS BIGINT) AS critical_anomalies,
  CAST(COALESCE(i.on_time, 0) AS BIGINT) AS indices_on_time,
  CAST(COALESCE(i.delayed, 0) AS BIGINT) AS indices_delayed,
  CAST(n.people_now AS BIGINT) AS people_now,
  CAST(p.as_of AS TIMESTAMPTZ) AS as_of,
  CAST(COALESCE(a.error, 0) AS BIGINT) AS error_anomalies,
  @local_ts(p.as_of) AS as_of_local,
  CAST((SELECT s.timezone FROM ref.site AS s) AS TEXT) AS timezone
FROM cams AS c
CROSS JOIN last_hour AS lh
CROSS JOIN people AS p
CROSS JOIN now_present AS n
CROSS JOIN util AS u
CROSS JOIN anom AS a
CROSS JOIN idx AS i
