MODEL (
  name analytics.worker_index,
  kind INCREMENTAL_BY_TIME_RANGE (time_column scheduled_start, batch_size 24, lookback 24),
  grain (date, index_number, worker_id),
  audits (
    unique_combination_of_columns(columns := (date, index_number, worker_id)),
    not_null(columns := (date, index_number, scheduled_start, worker_id, registered, presence_seconds)),
    accepted_range(column := productivity, min_v := 0, max_v := 1)
  ),
  description 'One row per index block (ref.index_timeline) and identified worker present in it. As in analytics.index_records, a visit counts in a block for its part inside [scheduled_start, scheduled_end) and its active and idle seconds are split in proportion to that part.',
  column_descriptions (
    date = 'site-local workday',
    index_number = 'index block',
    scheduled_start = 'block start (UTC)',
    worker_id = 'identity from the detections',
    registered = 'whether ref.workers knows the worker_id',
    worker_name = 'name from the registry; null when not registered',
    sessions = 'visits overlapping the block',
    presence_seconds = 'time in zones inside the block',
    active_seconds = 'active seconds inside the block (proportional share)',
    idle_seconds = 'idle seconds inside the block (proportional share)',
    productivity = 'active / (active + idle); null without time',
    assigned_seconds = 'presence in the worker''s assigned zones; null without assigned zones',
    elsewhere_seconds = 'presence outside the assigned zones; null without assigned zones',
    local_date = 'site-local day (equals date; the name every analytics fact shares)'
  )
);

WITH blocks AS (
  SELECT date, index_number, scheduled_start, scheduled_end
  FROM ref.index_timeline
  WHERE scheduled_start >= @batch_start() AND scheduled_start < @batch_end()
), parts AS (
  SELECT
    b.date, b.index_number, b.scheduled_start, s.worker_id, s.session_id,
    @seconds_between(GREATEST(s.entry_time, b.scheduled_start), LEAST(s.exit_time, b.scheduled_end)) AS part_seconds,
    CAST(@epoch_us(LEAST(s.exit_time, b.scheduled_end)) - @epoch_us(GREATEST(s.entry_time, b.scheduled_start)) AS DOUBLE)
      / NULLIF(CAST(@epoch_us(s.exit_time) - @epoch_us(s.entry_time) AS DOUBLE), 0) AS share,
    s.total_active_seconds,
    s.total_idle_seconds,
    POSITION('"' || s.zone_id || '"' IN w.zones) > 0 AS assigned,
    w.zones IS NOT NULL AND w.zones <> '[]' AS has_assignment
  FROM blocks AS b
  JOIN analytics.sessions AS s
    ON s.entry_time < b.scheduled_end AND s.exit_time > b.scheduled_start
  LEFT JOIN ref.workers AS w ON w.worker_id = s.worker_id
  WHERE s.worker_id IS NOT NULL
    AND @may_overlap_batch(s.entry_time)
), per_worker AS (
  SELECT
    date, index_number, scheduled_start, worker_id,
    COUNT(DISTINCT session_id) AS sessions,
    SUM(part_seconds) AS presence,
    SUM(COALESCE(total_active_seconds * share, 0)) AS active,
    SUM(COALESCE(total_idle_seconds * share, 0)) AS idle,
    SUM(CASE WHEN assigned THEN part_seconds ELSE 0 END) AS assigned,
    BOOL_OR(has_assignment) AS has_assignment
  FROM parts
  GROUP BY date, index_number, scheduled_start, worker_id
)
SELECT
  pw.date,
  pw.index_number,
  pw.scheduled_start,
  pw.worker_id,
  w.worker_id IS NOT NULL AS registered,
  w.name AS worker_name,
  CAST(pw.sessions AS BIGINT) AS sessions,
  CAST(pw.presence AS DOUBLE) AS presence_seconds,
  CAST(pw.active AS DOUBLE) AS active_seconds,
  CAST(pw.idle AS DOUBLE) AS idle_seconds,
  CAST(pw.active AS DOUBLE) / NULLIF(CAST(pw.active + pw.idle AS DOUBLE), 0) AS productivity,
  CASE WHEN pw.has_assignment THEN CAST(pw.assigned AS DOUBLE) END AS assigned_seconds,
  CASE WHEN pw.has_assignment THEN CAST(pw.presence - pw.assigned AS DOUBLE) END AS elsewhere_seconds,
  pw.date AS local_date
FROM per_worker AS pw
LEFT JOIN ref.workers AS w ON w.worker_id = pw.worker_id
