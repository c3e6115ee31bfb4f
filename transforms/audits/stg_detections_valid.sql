AUDIT (name stg_detections_valid);
/* The staging view keeps one row per (camera_id, ts, track_id) with its keys and state filled in.
   Checked over the audited interval only, so the cost does not grow with history. Where the landed
   table's primary key already enforces the keys (PostgreSQL), only the state is checked: grouping a day of
   detections by the key (a hash of millions of groups) would re-check the constraint. */
SELECT camera_id, ts, track_id, COUNT(*) AS copies
FROM @this_model
WHERE ts >= @batch_start() AND ts < @batch_end() AND (NOT @landed_key_enforced() OR is_active IS NULL)
GROUP BY camera_id, ts, track_id
HAVING COUNT(*) > 1 OR camera_id IS NULL OR ts IS NULL OR track_id IS NULL OR BOOL_OR(is_active IS NULL)
