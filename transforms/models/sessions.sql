MODEL (
  name analytics.sessions,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column entry_time,
    batch_size 24, -- one site-local day (24 hourly intervals) per query
    lookback 24 -- re-run the previous day too: late data inside one day is picked up by the next run
  ),
  grain session_id,
  audits (
    unique_values(columns := (session_id)),
    unique_combination_of_columns(columns := (camera_id, track_id, entry_time)),
    not_null(columns := (session_id, camera_id, zone_id, track_id, visitor_id, track_count, entry_time, exit_time, duration_seconds, total_active_seconds, total_idle_seconds, status)),
    accepted_values(column := status, is_in := @enum_values('session_status')),
    known_ids(column := zone_id, source := ref.zones),
    index_number_in_timeline(date_column := local_date),
    forall(criteria := (local_date = @local_date(entry_time))),
    session_times_consistent,
    no_overlapping_sessions
  ),
  description 'One row per visit of a visitor to a zone. A visitor is a chain of track fragments joined by analytics.track_links (a track that continues nothing and is continued by nothing is its own visitor), so a person whose track the tracker broke is one visitor: the step between the last sample of one fragment and the first of the next counts like any other step. A visit ends when the visitor enters another zone or is unseen in the zone for more than session_gap_seconds; a visit is dropped when its seen span (exit_time - entry_time) plus half of the detection dropouts at its edges is shorter than min_session_seconds: a dropout is an unseen step of the visitor (from its previous sample, in any zone or none, to the first sample of the visit; from the last sample to its next one) longer than session_dropout_seconds and than two sampling steps of the camera (its shortest step between two samples of a visitor in the batch: at a sparse sampling rate every step is long, and only a missed frame is a dropout), and at most session_gap_seconds (a longer one is the visitor being away). The crossing of the zone edge fell somewhere in that step, half of it on average; durations stay the seen span. A visit belongs to the site-local day of its entry and is followed past midnight (up to session_lookahead_hours) so it is never cut at a day boundary.',
  column_descriptions (
    session_id = 'md5 of camera_id|visitor_id|entry epoch microseconds (= the track id when nothing was linked)',
    camera_id = 'camera (analytics.cameras)',
    zone_id = 'zone visited (analytics.zones)',
    track_id = 'tracker id of the track that entered the zone',
    visitor_id = 'visitor (analytics.track_links.visitor_id): track id of the first fragment of the person',
    track_count = 'tracks (fragments) of the visitor seen during the visit',
    worker_id = 'identity of the visitor when known upstream (from the entry sample)',
    entry_time = 'first sample of the visit (UTC)',
    exit_time = 'last sample of the visit (UTC)',
    duration_seconds = 'exit_time - entry_time',
    total_active_seconds = 'time between consecutive samples whose earlier sample moved (motion_score >= idle_motion_score), each step at most session_gap_seconds (a longer one ends the visit)',
    total_idle_seconds = 'the same for samples below idle_motion_score; active + idle = duration',
    max_idle_streak_seconds = 'longest uninterrupted idle stretch of the visit',
    max_idle_streak_start = 'when that stretch began (UTC)',
    samples = 'detections in the visit',
    index_number = 'index block holding entry_time; null outside working time',
    local_date = 'site-local day of entry_time',
    status = 'completed = seen after leaving; active = still inside at the end of the data; interrupted = track lost inside the zone',
    zone_name = 'zone name from the site config',
    camera_name = 'camera name from the site config',
    entry_time_local = 'entry_time in site-local wall-clock time',
    exit_time_local = 'exit_time in site-local wall-clock time'
  )
);

@DEF(gap_us, @seconds_to_us(@session_gap_seconds));
@DEF(dropout_us, @seconds_to_us(@session_dropout_seconds));

WITH links AS NOT MATERIALIZED (
  /* The visitor of every track that can appear below (tracks first seen up to a day and the lookahead
     before the batch, or inside the lookahead after it). A track without a row is its own visitor.
     Not materialized: inlined at each use, PostgreSQL sees the table's statistics and hashes these rows
     rather than the day's detections. */
  SELECT camera_id, track_id, visitor_id
  FROM analytics.track_links
  WHERE first_seen >= @batch_start() - INTERVAL '1 day' - INTERVAL '1 hour' * @session_lookahead_hours
    AND first_seen < @batch_end() + INTERVAL '1 hour' * @session_lookahead_hours
), open_visitors AS (
  /* Visitors seen in the last session_gap_seconds of the batch: their later samples (up to
     session_lookahead_hours) belong to their visits too. Read from those seconds of detections, not from
     the batch's samples below: a CTE read twice is copied by PostgreSQL (the whole day, twice). */
  SELECT DISTINCT s.camera_id, COALESCE(l.visitor_id, s.track_id) AS visitor_id
  FROM staging.stg_detections AS s
  LEFT JOIN links AS l
    ON s.camera_id = l.camera_id AND s.track_id = l.track_id
  WHERE s.ts >= @batch_end() - INTERVAL '1 second' * @session_gap_seconds AND s.ts < @batch_end()
), batch_samples AS (
  /* The batch and session_gap_seconds before it (enough to know whether a visit really starts in it). */
  SELECT s.camera_id, COALESCE(l.visitor_id, s.track_id) AS visitor_id, s.track_id, s.ts, s.zone_id,
         s.is_active, s.worker_id
  FROM staging.stg_detections AS s
  LEFT JOIN links AS l
    ON s.camera_id = l.camera_id AND s.track_id = l.track_id
  WHERE s.ts >= @batch_start() - INTERVAL '1 second' * @session_gap_seconds AND s.ts < @batch_end()
), track_samples AS NOT MATERIALIZED (
  /* Every sample of the visitors that matter: the batch, and the later samples of the open visitors.
     Not materialized: PostgreSQL would copy the day's samples for the two readers below; reading them
     twice costs less. */
  SELECT camera_id, visitor_id, track_id, ts, zone_id, is_active, worker_id FROM batch_samples
  UNION ALL
  SELECT s.camera_id, COALESCE(l.visitor_id, s.track_id) AS visitor_id, s.track_id, s.ts, s.zone_id,
         s.is_active, s.worker_id
  FROM staging.stg_detections AS s
  LEFT JOIN links AS l
    ON s.camera_id = l.camera_id AND s.track_id = l.track_id
  JOIN open_visitors
    ON s.camera_id = open_visitors.camera_id AND COALESCE(l.visitor_id, s.track_id) = open_visitors.visitor_id
  WHERE s.ts >= @batch_end() AND s.ts < @batch_end() + INTERVAL '1 hour' * @session_lookahead_hours
), track_last AS (
  SELECT camera_id, visitor_id, MAX(ts) AS last_ts FROM track_samples GROUP BY camera_id, visitor_id
), sequenced AS (
  /* The unseen step before and after each sample of a visitor, in any zone or none: at the edges of a visit
     they are the dropouts the keep rule below credits. */
  SELECT
    *,
    @epoch_us(ts) - @epoch_us(LAG(ts) OVER w) AS step_in_us,
    @epoch_us(LEAD(ts) OVER w) - @epoch_us(ts) AS step_out_us
  FROM track_samples
  WINDOW w AS (PARTITION BY camera_id, visitor_id ORDER BY ts, track_id)
), zoned AS (
  SELECT
    camera_id, visitor_id, track_id, ts, zone_id, is_active, worker_id, step_in_us, step_out_us,
    @epoch_us(ts) AS ts_us,
    LAG(zone_id) OVER w AS prev_zone,
    @epoch_us(LAG(ts) OVER w) AS prev_us,
    LAG(is_active) OVER w AS prev_active,
    LAG(track_id) OVER w AS prev_track,
    /* The shortest step that counts as a dropout: longer than session_dropout_seconds and than two of the
       camera's sampling steps in this batch (its shortest step between two samples of a visitor; a frame
       missed), so sparse sampling (0.5 fps: every step 2 s) earns no credit. */
    GREATEST(
      @dropout_us,
      2 * COALESCE(MIN(CASE WHEN step_in_us > 0 THEN step_in_us END) OVER (PARTITION BY camera_id), 0)
    ) AS min_dropout_us
  FROM sequenced
  WHERE zone_id IS NOT NULL
  WINDOW w AS (PARTITION BY camera_id, visitor_id ORDER BY ts, track_id)
), starts AS (
  SELECT
    *,
    CASE WHEN prev_us IS NULL OR zone_id <> prev_zone OR ts_us - prev_us > @gap_us THEN 1 ELSE 0 END AS visit_start
  FROM zoned
), numbered AS (
  SELECT
    *,
    SUM(visit_start) OVER w AS visit_no,
    SUM(CASE WHEN visit_start = 1 OR is_active <> prev_active THEN 1 ELSE 0 END) OVER w AS run_no,
    LEAD(ts_us) OVER w AS next_us,
    LEAD(visit_start) OVER w AS next_visit_start
  FROM starts
  WINDOW w AS (PARTITION BY camera_id, visitor_id ORDER BY ts, track_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), steps AS (
  /* The step from each sample to the next one of the same visit: at most the gap, since a longer step
     starts a new visit (transforms/tests/test_sessions_steps.yaml). */
  SELECT
    *,
    CASE WHEN next_visit_start = 0 THEN next_us - ts_us ELSE 0 END AS step_us,
    CASE WHEN visit_start = 1 OR track_id <> prev_track THEN 1 ELSE 0 END AS new_track,
    /* A dropout at an edge of the visit: an unseen step longer than min_dropout_us, at most the gap (a longer
       step is the visitor being away, and the batch reads only the gap before its start). */
    CASE
      WHEN visit_start = 1
        AND step_in_us > min_dropout_us
        AND step_in_us <= @gap_us
        THEN step_in_us
      ELSE 0
    END
    + CASE
      WHEN COALESCE(next_visit_start, 1) = 1
        AND step_out_us > min_dropout_us
        AND step_out_us <= @gap_us
        THEN step_out_us
      ELSE 0
    END AS edge_dropout_us
  FROM numbered
), runs AS (
  /* Uninterrupted stretches of one state inside a visit. */
  SELECT
    camera_id, visitor_id, visit_no, run_no,
    MIN(zone_id) AS zone_id,
    MIN(ts) AS run_start,
    MAX(ts) AS run_end,
    MIN(ts_us) AS run_start_us,
    BOOL_AND(is_active) AS is_active,
    SUM(step_us) AS run_us,
    COUNT(*) AS samples,
    SUM(new_track) AS new_tracks,
    SUM(edge_dropout_us) AS edge_dropout_us,
    MAX(CASE WHEN visit_start = 1 THEN worker_id END) AS entry_worker_id,
    MAX(CASE WHEN visit_start = 1 THEN track_id END) AS entry_track_id
  FROM steps
  GROUP BY camera_id, visitor_id, visit_no, run_no
), ranked_runs AS (
  SELECT
    *,
    /* the longest idle stretch of the visit ranks first (the earliest on a tie) */
    ROW_NUMBER() OVER (
      PARTITION BY camera_id, visitor_id, visit_no
      ORDER BY CASE WHEN is_active THEN -1 ELSE run_us END DESC, run_start
    ) AS idle_rank
  FROM runs
), visits AS (
  SELECT
    camera_id, visitor_id, visit_no,
    MAX(entry_track_id) AS track_id,
    SUM(new_tracks) AS track_count,
    SUM(edge_dropout_us) AS edge_dropout_us,
    MIN(zone_id) AS zone_id,
    MIN(run_start) AS entry_time,
    MAX(run_end) AS exit_time,
    MIN(run_start_us) AS entry_us,
    SUM(CASE WHEN is_active THEN run_us ELSE 0 END) AS active_us,
    SUM(CASE WHEN is_active THEN 0 ELSE run_us END) AS idle_us,
    MAX(CASE WHEN is_active THEN 0 ELSE run_us END) AS max_idle_us,
    MIN(CASE WHEN idle_rank = 1 AND NOT is_active AND run_us > 0 THEN run_start END) AS idle_streak_start,
    MAX(entry_worker_id) AS worker_id,
    SUM(samples) AS samples
  FROM ranked_runs
  GROUP BY camera_id, visitor_id, visit_no
), camera_last AS (
  SELECT camera_id, MAX(max_event_ts) AS last_ts FROM raw.camera_watermarks GROUP BY camera_id
)
SELECT
  MD5(v.camera_id || '|' || CAST(v.visitor_id AS VARCHAR) || '|' || CAST(v.entry_us AS VARCHAR)) AS session_id,
  v.camera_id,
  v.zone_id,
  v.track_id,
  v.visitor_id,
  CAST(v.track_count AS BIGINT) AS track_count,
  v.worker_id,
  v.entry_time,
  v.exit_time,
  @us_to_seconds(@epoch_us(v.exit_time) - v.entry_us) AS duration_seconds,
  @us_to_seconds(v.active_us) AS total_active_seconds,
  @us_to_seconds(v.idle_us) AS total_idle_seconds,
  @us_to_seconds(v.max_idle_us) AS max_idle_streak_seconds,
  v.idle_streak_start AS max_idle_streak_start,
  CAST(v.samples AS BIGINT) AS samples,
  it.index_number,
  @local_date(v.entry_time) AS local_date,
  CASE
    WHEN tl.last_ts > v.exit_time THEN 'completed'
    WHEN @epoch_us(GREATEST(COALESCE(cl.last_ts, tl.last_ts), tl.last_ts)) - @epoch_us(v.exit_time) <= @gap_us
      THEN 'active'
    ELSE 'interrupted'
  END AS status,
  @zone_name(v.zone_id) AS zone_name,
  @camera_name(v.camera_id) AS camera_name,
  @local_ts(v.entry_time) AS entry_time_local,
  @local_ts(v.exit_time) AS exit_time_local
FROM visits AS v
JOIN track_last AS tl
  ON v.camera_id = tl.camera_id AND v.visitor_id = tl.visitor_id
LEFT JOIN camera_last AS cl
  ON v.camera_id = cl.camera_id
LEFT JOIN ref.index_timeline AS it
  ON it.date = @local_date(v.entry_time) AND v.entry_time >= it.scheduled_start AND v.entry_time < it.scheduled_end
WHERE
  v.entry_time >= @batch_start()
  AND v.entry_time < @batch_end()
  /* seen span + half the edge dropouts >= min_session_seconds, doubled: integers, exact on both engines */
  AND 2 * (@epoch_us(v.exit_time) - v.entry_us) + v.edge_dropout_us >= 2 * @seconds_to_us(@min_session_seconds)
