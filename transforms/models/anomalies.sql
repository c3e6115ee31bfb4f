MODEL (
  name analytics.anomalies,
  kind INCREMENTAL_BY_TIME_RANGE (time_column ts, batch_size 24, lookback 24),
  grain anomaly_id,
  audits (
    unique_values(columns := (anomaly_id)),
    not_null(columns := (anomaly_id, anomaly_type, severity, ts, camera_id, description, metadata)),
    accepted_values(column := anomaly_type, is_in := @enum_values('anomaly_type')),
    accepted_values(column := severity, is_in := @enum_values('severity')),
    known_ids(column := camera_id, source := ref.cameras),
    known_ids(column := zone_id, source := ref.zones),
    index_number_in_timeline(date_column := local_date),
    forall(criteria := (ts_end >= ts, local_date = @local_date(ts)))
  ),
  description 'Things a supervisor should look at, one row each: excessive_idle (an idle stretch of a visit longer than excessive_idle_seconds), zone_overflow (more people than max_workers for overflow_seconds), zone_empty (fewer than min_workers during working time for empty_seconds), restricted_zone_entry (any visit to a restricted zone), after_hours_presence (a visit starting outside working time; ts_end is when working time begins or the visit ends, whichever is first, so duration_seconds is the part outside working time), camera_down (no frames for camera_down_seconds of working time). A stretch that crosses local midnight is reported in each day.',
  column_descriptions (
    anomaly_id = 'md5 of type|camera|zone|track|start epoch microseconds',
    anomaly_type = 'excessive_idle | zone_overflow | zone_empty | restricted_zone_entry | after_hours_presence | camera_down',
    severity = 'info | warning | error | critical: the highest severity of the site.yaml alert rules of this type (defaults without a rule: camera_down critical, restricted_zone_entry and zone_overflow error, others warning)',
    ts = 'when it started (UTC)',
    ts_end = 'when it ended (UTC)',
    duration_seconds = 'ts_end - ts',
    camera_id = 'camera (analytics.cameras)',
    zone_id = 'zone concerned (analytics.zones), when there is one',
    track_id = 'track concerned, when there is one',
    session_id = 'session concerned (analytics.sessions), when there is one',
    index_number = 'index block holding ts; null outside working time',
    local_date = 'site-local day of ts',
    description = 'one readable sentence naming the zone (name and id) or camera',
    metadata = 'JSON (jsonb on PostgreSQL) with the measured values and the threshold applied. Keys by type: excessive_idle idle_seconds, threshold_seconds; restricted_zone_entry duration_seconds; after_hours_presence duration_seconds (the part outside working time), visit_seconds (the whole visit); zone_overflow and zone_empty seconds, min_people, max_people, min_workers, max_workers, threshold_seconds; camera_down seconds, threshold_seconds',
    zone_name = 'zone name from the site config, when there is a zone',
    camera_name = 'camera name from the site config',
    ts_local = 'ts in site-local wall-clock time',
    ts_end_local = 'ts_end in site-local wall-clock time',
    local_hour = 'site-local hour of day 0..23 of ts',
    threshold_seconds = 'metadata threshold_seconds as a number: the duration threshold the rule applied; null for restricted_zone_entry and after_hours_presence'
  )
);

WITH expected_windows AS (
  /* Every health window of working time, per camera. */
  SELECT c.camera_id, w.first_window + g.k AS window_no
  FROM ref.cameras AS c
  CROSS JOIN (
    SELECT
      @first_health_window(work_start) AS first_window,
      @health_window(work_end) AS end_window
    FROM @working_intervals() AS wi
    WHERE work_start >= @batch_start() AND work_start < @batch_end()
  ) AS w
  CROSS JOIN LATERAL (SELECT k FROM GENERATE_SERIES(0, w.end_window - w.first_window - 1) AS gs(k)) AS g
), delivered AS (
  SELECT camera_id, @health_window(window_start) AS window_no,
         SUM(frames_read) AS frames_read
  FROM raw.camera_health
  WHERE window_start >= @batch_start() AND window_start < @batch_end()
  GROUP BY 1, 2
), day_sessions AS (
  SELECT s.*, z.zone_type, z.name AS zone_label
  FROM analytics.sessions AS s
  JOIN ref.zones AS z ON s.zone_id = z.zone_id
  WHERE @may_overlap_batch(s.entry_time)
), after_hours AS (
  /* A visit that starts outside working time: the after-hours part runs until working time begins
     (or the visit ends), so a visit entering at 07:45 counts the 15 minutes before an 08:00 start. */
  SELECT
    ds.*,
    LEAST(ds.exit_time, COALESCE(nw.next_work_start, ds.exit_time)) AS after_hours_end,
    @seconds_between(ds.entry_time, LEAST(ds.exit_time, COALESCE(nw.next_work_start, ds.exit_time))) AS after_hours_seconds
  FROM day_sessions AS ds
  LEFT JOIN LATERAL (
    SELECT MIN(wi.work_start) AS next_work_start FROM @working_intervals() AS wi WHERE wi.work_start > ds.entry_time
  ) AS nw ON TRUE
  WHERE ds.index_number IS NULL
), session_anomalies AS (
  SELECT
    'excessive_idle' AS anomaly_type, @severity_excessive_idle AS severity,
    max_idle_streak_start AS ts,
    CAST(max_idle_streak_start + INTERVAL '1 microsecond' * @seconds_to_us(max_idle_streak_seconds) AS TIMESTAMPTZ) AS ts_end,
    camera_id, zone_id, track_id, session_id,
    'Track ' || CAST(track_id AS VARCHAR) || ' idle for ' || CAST(CAST(ROUND(max_idle_streak_seconds) AS BIGINT) AS VARCHAR)
      || ' s in zone ' || zone_label || ' (' || zone_id || ')' AS description,
    @json_dict('idle_seconds', @json_num(max_idle_streak_seconds), 'threshold_seconds', @excessive_idle_seconds) AS metadata
  FROM day_sessions
  WHERE max_idle_streak_seconds >= @excessive_idle_seconds
  UNION ALL
  SELECT
    'restricted_zone_entry', @severity_restricted_zone_entry, entry_time, exit_time, camera_id, zone_id, track_id, session_id,
    'Track ' || CAST(track_id AS VARCHAR) || ' entered restricted zone ' || zone_label || ' (' || zone_id || ')',
    @json_dict('duration_seconds', @json_num(duration_seconds))
  FROM day_sessions
  WHERE zone_type = 'restricted'
  UNION ALL
  SELECT
    'after_hours_presence', @severity_after_hours_presence, entry_time, after_hours_end, camera_id, zone_id, track_id, session_id,
    'Track ' || CAST(track_id AS VARCHAR) || ' present in zone ' || zone_label || ' (' || zone_id || ') for '
      || CAST(CAST(ROUND(after_hours_seconds) AS BIGINT) AS VARCHAR) || ' s outside working time',
    @json_dict('duration_seconds', @json_num(after_hours_seconds), 'visit_seconds', @json_num(duration_seconds))
  FROM after_hours
), flagged AS (
  /* Presence segments that break a zone's staffing rule. */
  SELECT
    p.camera_id, p.zone_id, p.segment_start, p.segment_end, p.people, z.min_workers, z.max_workers,
    z.name AS zone_name,
    CASE
      WHEN z.alert_on_overflow AND p.people > z.max_workers THEN 'zone_overflow'
      WHEN z.alert_on_empty AND z.min_workers > 0 AND p.in_working_time AND p.people < z.min_workers THEN 'zone_empty'
    END AS rule
  FROM analytics.zone_presence AS p
  JOIN ref.zones AS z ON p.zone_id = z.zone_id
  /* an empty zone is only news while its camera is watching: a camera that sent nothing is camera_down */
  JOIN (SELECT DISTINCT camera_id FROM delivered WHERE frames_read > 0) AS watching ON p.camera_id = watching.camera_id
  WHERE p.scope = 'zone' AND p.segment_start >= @batch_start() AND p.segment_start < @batch_end()
), islands AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY zone_id ORDER BY segment_start)
      - ROW_NUMBER() OVER (PARTITION BY zone_id, rule ORDER BY segment_start) AS island
  FROM flagged
), staffing AS (
  SELECT
    rule, camera_id, zone_id,
    MIN(segment_start) AS ts, MAX(segment_end) AS ts_end,
    MIN(people) AS min_people, MAX(people) AS max_people,
    MIN(min_workers) AS min_workers, MIN(max_workers) AS max_workers,
    MIN(zone_name) AS zone_name
  FROM islands
  WHERE rule IS NOT NULL
  GROUP BY rule, camera_id, zone_id, island
), staffing_anomalies AS (
  SELECT
    rule AS anomaly_type, CASE WHEN rule = 'zone_overflow' THEN @severity_zone_overflow ELSE @severity_zone_empty END AS severity,
    ts, ts_end, camera_id, zone_id, CAST(NULL AS BIGINT) AS track_id, CAST(NULL AS VARCHAR) AS session_id,
    CASE
      WHEN rule = 'zone_overflow' THEN 'Zone ' || zone_name || ' (' || zone_id || ') held up to ' || CAST(max_people AS VARCHAR)
        || ' people (max ' || CAST(max_workers AS VARCHAR) || ')'
      ELSE 'Zone ' || zone_name || ' (' || zone_id || ') had ' || CAST(min_people AS VARCHAR) || ' people (min '
        || CAST(min_workers AS VARCHAR) || ') during working time'
    END AS description,
    @json_dict(
      'seconds', ROUND(CAST(@epoch_us(ts_end) - @epoch_us(ts) AS DECIMAL(18, 0)) / 1000000, 3),
      'min_people', min_people, 'max_people', max_people, 'min_workers', min_workers, 'max_workers', max_workers,
      'threshold_seconds', CASE WHEN rule = 'zone_overflow' THEN @overflow_seconds ELSE @empty_seconds END
    ) AS metadata
  FROM staffing
  WHERE @epoch_us(ts_end) - @epoch_us(ts)
    >= @seconds_to_us(CASE WHEN rule = 'zone_overflow' THEN @overflow_seconds ELSE @empty_seconds END)
), down_windows AS (
  SELECT
    e.camera_id, e.window_no,
    e.window_no - ROW_NUMBER() OVER (PARTITION BY e.camera_id ORDER BY e.window_no) AS island
  FROM expected_windows AS e
  LEFT JOIN delivered AS d ON e.camera_id = d.camera_id AND e.window_no = d.window_no
  WHERE COALESCE(d.frames_read, 0) = 0
), outages AS (
  SELECT camera_id, MIN(window_no) AS first_window, MAX(window_no) + 1 AS end_window, COUNT(*) AS windows
  FROM down_windows
  GROUP BY camera_id, island
  HAVING COUNT(*) * @health_window_seconds >= @camera_down_seconds
    -- a day with no health at all from any camera has not been landed yet: nothing to judge
    AND EXISTS (SELECT 1 FROM delivered)
), camera_anomalies AS (
  SELECT
    'camera_down' AS anomaly_type, @severity_camera_down AS severity,
    @health_window_start(first_window) AS ts,
    @health_window_start(end_window) AS ts_end,
    camera_id, CAST(NULL AS VARCHAR) AS zone_id, CAST(NULL AS BIGINT) AS track_id, CAST(NULL AS VARCHAR) AS session_id,
    'Camera ' || COALESCE(@camera_name(outages.camera_id), '?')
      || ' (' || camera_id || ') delivered no frames for ' || CAST(CAST(windows * @health_window_seconds AS BIGINT) AS VARCHAR)
      || ' s of working time' AS description,
    @json_dict('seconds', CAST(windows * @health_window_seconds AS BIGINT), 'threshold_seconds', @camera_down_seconds)
      AS metadata
  FROM outages
), all_anomalies AS (
  SELECT * FROM session_anomalies
  UNION ALL SELECT * FROM staffing_anomalies
  UNION ALL SELECT * FROM camera_anomalies
)
SELECT
  MD5(a.anomaly_type || '|' || a.camera_id || '|' || COALESCE(a.zone_id, '') || '|'
      || COALESCE(CAST(a.track_id AS VARCHAR), '') || '|' || CAST(@epoch_us(a.ts) AS VARCHAR)) AS anomaly_id,
  a.anomaly_type,
  a.severity,
  a.ts,
  CAST(a.ts_end AS TIMESTAMPTZ) AS ts_end,  -- typed for the catalog (Dagster UI)
  @seconds_between(a.ts, a.ts_end) AS duration_seconds,
  a.camera_id,
  a.zone_id,
  a.track_id,
  a.session_id,
  it.index_number,
  @local_date(a.ts) AS local_date,
  a.description,
  @jsonb(a.metadata) AS metadata,
  @zone_name(a.zone_id) AS zone_name,
  @camera_name(a.camera_id) AS camera_name,
  @local_ts(a.ts) AS ts_local,
  @local_ts(a.ts_end) AS ts_end_local,
  @local_hour(a.ts) AS local_hour,
  /* the JSON value BI filters on most, as a plain column */
  CAST(CAST(a.metadata AS JSON) ->> 'threshold_seconds' AS DOUBLE) AS threshold_seconds
FROM all_anomalies AS a
LEFT JOIN ref.index_timeline AS it
  ON it.date = @local_date(a.ts) AND a.ts >= it.scheduled_start AND a.ts < it.scheduled_end
WHERE a.ts >= @batch_start() AND a.ts < @batch_end()
