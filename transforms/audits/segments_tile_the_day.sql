AUDIT (name segments_tile_the_day);
/* Presence segments of one zone (or camera) follow each other without gap or overlap. */
SELECT *
FROM (
  SELECT
    scope, camera_id, zone_id, segment_start, segment_end,
    LEAD(segment_start) OVER (PARTITION BY scope, camera_id, zone_id ORDER BY segment_start) AS next_start
  FROM @this_model
) AS s
WHERE segment_end <= segment_start OR (next_start IS NOT NULL AND next_start <> segment_end)
