MODEL (
  name analytics.heatmap_hourly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column hour_start, batch_size 24, lookback 24),
  grain (camera_id, hour_start, cell_x, cell_y),
  audits (
    unique_combination_of_columns(columns := (camera_id, hour_start, cell_x, cell_y)),
    not_null(columns := (camera_id, hour_start, cell_x, cell_y, samples)),
    accepted_range(column := samples, min_v := 1)
  ),
  description 'Where people stand: per camera, per hour, per grid cell of heatmap_cell_px pixels, the number of detections whose bbox bottom-centre falls in the cell, and the distinct people (visitors) among them. Cells without detections have no row.',
  column_descriptions (
    camera_id = 'camera (analytics.cameras)',
    hour_start = 'hour (UTC)',
    local_date = 'site-local day of the hour',
    cell_x = 'grid column: floor(bottom-centre x / heatmap_cell_px)',
    cell_y = 'grid row: floor(bottom-centre y / heatmap_cell_px)',
    cell_px = 'cell size in pixels',
    samples = 'detections in the cell',
    tracks = 'distinct tracker ids in the cell (track fragments: a person the tracker broke in three counts three)',
    unique_visitors = 'distinct visitors in the cell (the track fragments of one person, linked by analytics.track_links)',
    active_samples = 'of which moving (motion_score >= idle_motion_score)',
    mean_motion_score = 'mean motion_score of the samples',
    camera_name = 'camera name from the site config',
    hour_start_local = 'hour_start in site-local wall-clock time',
    local_hour = 'site-local hour of day 0..23'
  )
);

SELECT
  d.camera_id,
  @utc_trunc('hour', d.ts) AS hour_start,
  MIN(d.local_date) AS local_date,
  CAST(FLOOR(d.foot_x / @heatmap_cell_px) AS INT) AS cell_x,
  CAST(FLOOR(d.foot_y / @heatmap_cell_px) AS INT) AS cell_y,
  CAST(@heatmap_cell_px AS INT) AS cell_px,
  CAST(COUNT(*) AS BIGINT) AS samples,
  CAST(COUNT(DISTINCT d.track_id) AS BIGINT) AS tracks,
  CAST(SUM(CASE WHEN d.is_active THEN 1 ELSE 0 END) AS BIGINT) AS active_samples,
  AVG(CAST(d.motion_score AS DOUBLE)) AS mean_motion_score,
  (SELECT c.name FROM ref.cameras AS c WHERE c.camera_id = d.camera_id) AS camera_name,
  @local_ts(@utc_trunc('hour', d.ts)) AS hour_start_local,
  CAST(EXTRACT(HOUR FROM @local_ts(@utc_trunc('hour', d.ts))) AS INT) AS local_hour,
  CAST(COUNT(DISTINCT COALESCE(l.visitor_id, d.track_id)) AS BIGINT) AS unique_visitors
FROM staging.stg_detections AS d
LEFT JOIN analytics.track_links AS l  -- a track without a row is its own visitor (as in analytics.sessions)
  ON l.camera_id = d.camera_id AND l.track_id = d.track_id
  AND l.first_seen >= @batch_start() - INTERVAL '1 day' - INTERVAL '1 hour' * @session_lookahead_hours
  AND l.first_seen < @batch_end()
WHERE d.ts >= @batch_start() AND d.ts < @batch_end()
GROUP BY d.camera_id, @utc_trunc('hour', d.ts), CAST(FLOOR(d.foot_x / @heatmap_cell_px) AS INT), CAST(FLOOR(d.foot_y / @heatmap_cell_px) AS INT)
