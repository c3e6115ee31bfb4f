MODEL (
  name staging.stg_detections,
  kind VIEW,
  grain (camera_id, ts, track_id),
  audits (stg_detections_valid),
  description 'Landed detections, one row per (camera_id, ts, track_id) (a key landed twice keeps one row, deterministically: the greatest batch_id), with the bbox bottom-centre, active/idle state, site-local date and index block. A view over raw.detections: every mart reads it with a time filter that the engines push down to the raw table.',
  column_descriptions (
    ts = 'frame capture time (UTC)',
    camera_id = 'camera that saw it (ref.cameras)',
    track_id = 'tracker id, unique per camera per day at least',
    frame_idx = 'frame number within the source',
    class_id = 'COCO class id; 0 = person',
    confidence = 'detector confidence 0..1',
    x = 'bbox left, pixels', y = 'bbox top, pixels', w = 'bbox width, pixels', h = 'bbox height, pixels',
    foot_x = 'bbox bottom-centre x (x + w/2), pixels: where the person stands',
    foot_y = 'bbox bottom-centre y (y + h), pixels',
    zone_id = 'zone (ref.zones) holding the bottom-centre; null outside all zones',
    motion_score = 'share of moving pixels inside the bbox, 0..1',
    is_active = 'motion_score >= the site idle_motion_score threshold',
    worker_id = 'identity from upstream when known',
    batch_id = 'ingest batch that landed the row',
    local_date = 'site-local calendar day of ts',
    index_number = 'index block (ref.index_timeline) holding ts; null outside working time'
  )
);

SELECT
  d.ts,
  d.camera_id,
  d.track_id,
  d.frame_idx,
  d.class_id,
  d.confidence,
  d.x,
  d.y,
  d.w,
  d.h,
  /* in double precision on both engines, so a point on a cell edge falls the same way */
  CAST(d.x AS DOUBLE) + CAST(d.w AS DOUBLE) / 2 AS foot_x,
  CAST(d.y AS DOUBLE) + CAST(d.h AS DOUBLE) AS foot_y,
  d.zone_id,
  d.motion_score,
  CAST(d.motion_score AS DOUBLE) >= CAST(@idle_motion_score AS DOUBLE) AS is_active,
  d.worker_id,
  d.batch_id,
  @local_date(d.ts) AS local_date,
  /* a scalar subquery rather than a join, so readers that do not select it do not pay for it */
  (
    SELECT it.index_number
    FROM ref.index_timeline AS it
    WHERE it.date = @local_date(d.ts) AND d.ts >= it.scheduled_start AND d.ts < it.scheduled_end
  ) AS index_number
/* one row per key: PostgreSQL's primary key guarantees it, DuckDB keeps the greatest batch_id of a key
   landed twice (macros/staging.py) */
FROM @landed_detections() AS d
