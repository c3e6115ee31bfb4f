MODEL (
  name analytics.zone_occupancy_minutely,
  kind INCREMENTAL_BY_TIME_RANGE (time_column minute_start, batch_size 24, lookback 24),
  grain (zone_id, minute_start),
  audits (
    unique_combination_of_columns(columns := (zone_id, minute_start)),
    not_null(columns := (zone_id, camera_id, minute_start, mean_people, max_people)),
    accepted_range(column := mean_people, min_v := 0),
    occupancy_mean_within_max
  ),
  description 'Grain: one row per zone and minute. People present per zone per minute, every minute of every site-local day (zero when empty): the time-weighted mean and the maximum number of open sessions.',
  column_descriptions (
    zone_id = 'zone (analytics.zones)',
    camera_id = 'camera of the zone',
    minute_start = 'minute (UTC)',
    local_date = 'site-local day of the minute',
    mean_people = 'time-weighted mean number of people in the zone during the minute',
    max_people = 'most people in the zone at any moment of the minute',
    in_working_time = 'the minute starts inside scheduled working time',
    zone_name = 'zone name from the site config',
    camera_name = 'camera name from the site config',
    minute_start_local = 'minute_start in site-local wall-clock time',
    local_hour = 'site-local hour of day 0..23 of the minute'
  )
);

WITH segments AS (
  SELECT
    camera_id, zone_id, segment_start, segment_end, people, in_working_time,
    @epoch_us(segment_start) AS s_us,
    @epoch_us(segment_end) AS e_us
  FROM analytics.zone_presence
  WHERE scope = 'zone' AND segment_start >= @batch_start() AND segment_start < @batch_end()
), expanded AS (
  /* One row per (segment, minute it touches). */
  SELECT sg.*, CAST(FLOOR(sg.s_us / 60000000) AS BIGINT) + g.k AS minute_no
  FROM segments AS sg
  CROSS JOIN LATERAL (
    SELECT k FROM GENERATE_SERIES(0, CAST(FLOOR((sg.e_us - 1) / 60000000) - FLOOR(sg.s_us / 60000000) AS BIGINT)) AS gs(k)
  ) AS g
)
SELECT
  zone_id,
  MIN(camera_id) AS camera_id,
  CAST(TO_TIMESTAMP(minute_no * 60) AS TIMESTAMPTZ) AS minute_start,
  @local_date(CAST(TO_TIMESTAMP(minute_no * 60) AS TIMESTAMPTZ)) AS local_date,
  SUM(
    CAST(LEAST(e_us, (minute_no + 1) * 60000000) - GREATEST(s_us, minute_no * 60000000) AS DOUBLE) * people
  ) / 60000000 AS mean_people,
  MAX(people) AS max_people,
  BOOL_OR(in_working_time AND s_us <= minute_no * 60000000) AS in_working_time,
  @zone_name(expanded.zone_id) AS zone_name,
  (SELECT c.name FROM ref.zones AS z JOIN ref.cameras AS c ON c.camera_id = z.camera_id WHERE z.zone_id = expanded.zone_id) AS camera_name,
  @local_ts(CAST(TO_TIMESTAMP(minute_no * 60) AS TIMESTAMPTZ)) AS minute_start_local,
  @local_hour(CAST(TO_TIMESTAMP(minute_no * 60) AS TIMESTAMPTZ)) AS local_hour
FROM expanded
GROUP BY zone_id, minute_no
