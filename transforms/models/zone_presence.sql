MODEL (
  name analytics.zone_presence,
  kind INCREMENTAL_BY_TIME_RANGE (time_column segment_start, batch_size 24, lookback 24),
  grain (scope, camera_id, zone_id, segment_start),
  audits (
    not_null(columns := (scope, camera_id, segment_start, segment_end, people, in_working_time)),
    accepted_values(column := scope, is_in := ('zone', 'camera')),
    accepted_range(column := people, min_v := 0),
    segments_tile_the_day
  ),
  description 'How many people are present, as constant segments: per zone (scope zone) and per camera over all its zones (scope camera, zone_id null), the day is cut into [segment_start, segment_end) pieces with a constant number of open sessions. The pieces tile each site-local day and never straddle the start or end of working time, so occupancy, overflow and empty-zone rules are exact sums over them.',
  column_descriptions (
    scope = 'zone: one zone; camera: all zones of the camera together',
    camera_id = 'camera (analytics.cameras)',
    zone_id = 'zone (analytics.zones); null for scope camera',
    segment_start = 'segment start (UTC, inclusive)',
    segment_end = 'segment end (UTC, exclusive)',
    people = 'sessions open during the segment',
    in_working_time = 'the segment lies inside scheduled working time (breaks excluded)',
    local_date = 'site-local day of segment_start',
    zone_name = 'zone name from the site config; null for scope camera',
    camera_name = 'camera name from the site config',
    segment_start_local = 'segment_start in site-local wall-clock time'
  )
);

WITH spans AS (
  /* Sessions overlapping the batch, clipped to it (a session may have entered the previous day). */
  SELECT camera_id, zone_id, GREATEST(entry_time, @batch_start()) AS s, LEAST(exit_time, @batch_end()) AS e
  FROM analytics.sessions
  WHERE @may_overlap_batch(entry_time) AND exit_time > @batch_start()
), working AS (
  SELECT work_start, work_end FROM @working_intervals() AS w
), edges AS (
  SELECT @batch_start() AS t
  UNION SELECT @batch_end()
  UNION SELECT work_start FROM working WHERE work_start > @batch_start() AND work_start < @batch_end()
  UNION SELECT work_end FROM working WHERE work_end > @batch_start() AND work_end < @batch_end()
), scopes AS (
  SELECT 'zone' AS scope, camera_id, zone_id FROM ref.zones
  UNION ALL
  SELECT 'camera' AS scope, camera_id, CAST(NULL AS VARCHAR) AS zone_id FROM ref.cameras
), points AS (
  SELECT 'zone' AS scope, camera_id, zone_id, s AS t, 1 AS delta FROM spans
  UNION ALL SELECT 'zone', camera_id, zone_id, e, -1 FROM spans
  UNION ALL SELECT 'camera', camera_id, NULL, s, 1 FROM spans
  UNION ALL SELECT 'camera', camera_id, NULL, e, -1 FROM spans
  UNION ALL SELECT sc.scope, sc.camera_id, sc.zone_id, ed.t, 0 FROM scopes AS sc CROSS JOIN edges AS ed
), instants AS (
  SELECT scope, camera_id, zone_id, t, SUM(delta) AS delta FROM points GROUP BY scope, camera_id, zone_id, t
), running AS (
  SELECT
    scope, camera_id, zone_id, t,
    SUM(delta) OVER (PARTITION BY scope, camera_id, zone_id ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS people,
    LEAD(t) OVER (PARTITION BY scope, camera_id, zone_id ORDER BY t) AS t_next
  FROM instants
)
SELECT
  r.scope,
  r.camera_id,
  r.zone_id,
  r.t AS segment_start,
  CAST(r.t_next AS TIMESTAMPTZ) AS segment_end,  -- typed for the catalog: LEAD() is not inferred
  CAST(r.people AS INT) AS people,
  EXISTS (SELECT 1 FROM working AS w WHERE r.t >= w.work_start AND r.t < w.work_end) AS in_working_time,
  @local_date(r.t) AS local_date,
  @zone_name(r.zone_id) AS zone_name,
  @camera_name(r.camera_id) AS camera_name,
  @local_ts(r.t) AS segment_start_local
FROM running AS r
WHERE r.t_next IS NOT NULL AND r.t >= @batch_start() AND r.t < @batch_end()
