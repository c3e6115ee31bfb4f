MODEL (
  name analytics.index_records,
  kind INCREMENTAL_BY_TIME_RANGE (time_column scheduled_start, batch_size 24, lookback 24),
  grain (date, index_number),
  audits (
    unique_combination_of_columns(columns := (date, index_number)),
    not_null(columns := (date, index_number, scheduled_start, scheduled_end, completion_status, zone_metrics)),
    accepted_values(column := completion_status, is_in := @enum_values('completion_status')),
    accepted_range(column := overrun_seconds, min_v := 0),
    accepted_range(column := start_delay_seconds, min_v := 0),
    accepted_range(column := productivity_score, min_v := 0, max_v := 1),
    accepted_range(column := total_active_seconds, min_v := 0),
    accepted_range(column := total_idle_seconds, min_v := 0),
    accepted_range(column := total_workers, min_v := 0),
    accepted_range(column := anomalies_count, min_v := 0),
    index_number_in_timeline(date_column := date),
    forall(criteria := (
      scheduled_end > scheduled_start,
      actual_end >= actual_start,
      ABS(productivity_score - total_active_seconds / (total_active_seconds + total_idle_seconds)) <= 1e-6
    ))
  ),
  description 'One row per workday and index block (analytics.index_blocks): the scheduled and actual start and end, the workers and active/idle time per zone, and how the block went. A session counts in a block for the part of it inside the block [scheduled_start, scheduled_end) (breaks the block meets included); its active and idle seconds are split in proportion to that part.',
  column_descriptions (
    date = 'site-local workday',
    index_number = 'index block 1..schedule.indices',
    scheduled_start = 'block start (UTC)',
    scheduled_end = 'block end (UTC, exclusive; includes any break the block meets)',
    working_seconds = 'scheduled working time of the block',
    actual_start = 'first presence at work (work_area or inspection zones) during the block',
    actual_end = 'last presence of the block''s work: the latest exit of the work-zone visits present during the block, not clipped to scheduled_end (only to the start of the next block of the day, whose work it is then)',
    start_delay_seconds = 'actual_start - scheduled_start, 0 when earlier; null without work presence',
    overrun_seconds = 'actual_end - scheduled_end, 0 when earlier; null without work presence',
    zone_metrics = 'JSON (jsonb on PostgreSQL) keyed by zone_id (analytics.zones); each value an object with keys workers (distinct people), active_seconds, idle_seconds (inside the block)',
    completion_status = 'first rule that holds: incomplete = no work presence, or the data does not reach the block end; delayed = actual_start later than index_start_grace_seconds after scheduled_start; overrun = actual_end later than index_overrun_grace_seconds after scheduled_end (work went on into the break or past the end of the working day); else on_time',
    total_workers = 'distinct people present (worker_id when known, else camera and track)',
    total_active_seconds = 'active seconds of the sessions inside the block',
    total_idle_seconds = 'idle seconds of the sessions inside the block',
    productivity_score = 'active / (active + idle); null without presence',
    anomalies_count = 'anomalies starting inside the block',
    local_date = 'site-local workday (same as date)',
    scheduled_start_local = 'block start, site-local wall-clock time',
    scheduled_end_local = 'block end, site-local wall-clock time'
  )
);

WITH blocks AS (
  SELECT
    date, index_number, scheduled_start, scheduled_end, working_seconds,
    -- The next block's work starts here: presence after it is that block's, not an overrun of this one.
    LEAD(scheduled_start) OVER (PARTITION BY date ORDER BY index_number) AS next_start
  FROM ref.index_timeline
  WHERE scheduled_start >= @batch_start() AND scheduled_start < @batch_end()
), clipped AS (
  SELECT
    b.date, b.index_number, s.camera_id, s.zone_id,
    COALESCE(s.worker_id, s.camera_id || ':' || CAST(s.track_id AS VARCHAR)) AS person,
    GREATEST(s.entry_time, b.scheduled_start) AS part_start,
    LEAST(s.exit_time, b.scheduled_end) AS part_end,
    CAST(@epoch_us(LEAST(s.exit_time, b.scheduled_end)) - @epoch_us(GREATEST(s.entry_time, b.scheduled_start)) AS DOUBLE)
      / NULLIF(CAST(@epoch_us(s.exit_time) - @epoch_us(s.entry_time) AS DOUBLE), 0) AS share,
    s.total_active_seconds,
    s.total_idle_seconds,
    @at_work(z.zone_type) AS at_work,
    LEAST(s.exit_time, COALESCE(b.next_start, s.exit_time)) AS work_end
  FROM blocks AS b
  JOIN analytics.sessions AS s
    ON s.entry_time < b.scheduled_end AND s.exit_time > b.scheduled_start
  LEFT JOIN ref.zones AS z ON z.zone_id = s.zone_id
  WHERE @may_overlap_batch(s.entry_time)
), per_zone AS (
  SELECT
    b.date, b.index_number, z.zone_id,
    COUNT(DISTINCT c.person) AS workers,
    COALESCE(SUM(c.total_active_seconds * c.share), 0) AS active_seconds,
    COALESCE(SUM(c.total_idle_seconds * c.share), 0) AS idle_seconds
  FROM blocks AS b
  CROSS JOIN ref.zones AS z
  LEFT JOIN clipped AS c
    ON c.date = b.date AND c.index_number = b.index_number AND c.zone_id = z.zone_id
  GROUP BY b.date, b.index_number, z.zone_id
), per_block AS (
  SELECT
    b.date, b.index_number,
    MIN(CASE WHEN c.at_work THEN c.part_start END) AS actual_start,
    MAX(CASE WHEN c.at_work THEN c.work_end END) AS actual_end,
    COUNT(DISTINCT c.person) AS total_workers
  FROM blocks AS b
  LEFT JOIN clipped AS c ON c.date = b.date AND c.index_number = b.index_number
  GROUP BY b.date, b.index_number
), zone_json AS (
  SELECT
    date, index_number,
    '{' || STRING_AGG(
      '"' || zone_id || '": '
      || @json_dict('workers', workers, 'active_seconds', @json_num(active_seconds), 'idle_seconds', @json_num(idle_seconds)),
      ', ' ORDER BY zone_id
    ) || '}' AS zone_metrics,
    SUM(active_seconds) AS active_seconds,
    SUM(idle_seconds) AS idle_seconds
  FROM per_zone
  GROUP BY date, index_number
), block_anomalies AS (
  SELECT b.date, b.index_number, COUNT(a.anomaly_id) AS anomalies_count
  FROM blocks AS b
  LEFT JOIN analytics.anomalies AS a
    ON a.ts >= b.scheduled_start AND a.ts < b.scheduled_end
    AND a.ts >= @batch_start() AND a.ts < @batch_end()
  GROUP BY b.date, b.index_number
), data_end AS (
  SELECT MAX(window_start) + INTERVAL '1 second' * @health_window_seconds AS covered_until
  FROM raw.camera_health
  WHERE window_start >= @batch_start() AND window_start < @batch_end()
)
SELECT
  b.date,
  b.index_number,
  b.scheduled_start,
  b.scheduled_end,
  CAST(b.working_seconds AS DOUBLE) AS working_seconds,
  pb.actual_start,
  CAST(pb.actual_end AS TIMESTAMPTZ) AS actual_end,
  -- CASE keeps null without presence (GREATEST skips nulls on both engines).
  CASE WHEN pb.actual_start IS NOT NULL
    THEN GREATEST(@seconds_between(b.scheduled_start, pb.actual_start), 0)
  END AS start_delay_seconds,
  CASE WHEN pb.actual_end IS NOT NULL
    THEN GREATEST(@seconds_between(b.scheduled_end, pb.actual_end), 0)
  END AS overrun_seconds,
  @jsonb(zj.zone_metrics) AS zone_metrics,
  CASE
    WHEN pb.actual_start IS NULL OR COALESCE(de.covered_until < b.scheduled_end, TRUE) THEN 'incomplete'
    WHEN pb.actual_start > b.scheduled_start + INTERVAL '1 second' * @index_start_grace_seconds THEN 'delayed'
    WHEN pb.actual_end > b.scheduled_end + INTERVAL '1 second' * @index_overrun_grace_seconds THEN 'overrun'
    ELSE 'on_time'
  END AS completion_status,
  CAST(pb.total_workers AS BIGINT) AS total_workers,
  CAST(zj.active_seconds AS DOUBLE) AS total_active_seconds,
  CAST(zj.idle_seconds AS DOUBLE) AS total_idle_seconds,
  CAST(zj.active_seconds AS DOUBLE) / NULLIF(CAST(zj.active_seconds + zj.idle_seconds AS DOUBLE), 0) AS productivity_score,
  CAST(ba.anomalies_count AS BIGINT) AS anomalies_count,
  b.date AS local_date,
  @local_ts(b.scheduled_start) AS scheduled_start_local,
  @local_ts(b.scheduled_end) AS scheduled_end_local
FROM blocks AS b
JOIN per_block AS pb ON pb.date = b.date AND pb.index_number = b.index_number
JOIN zone_json AS zj ON zj.date = b.date AND zj.index_number = b.index_number
JOIN block_anomalies AS ba ON ba.date = b.date AND ba.index_number = b.index_number
CROSS JOIN data_end AS de
