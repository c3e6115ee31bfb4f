AUDIT (name day_is_the_sum_of_its_hours);
/* One grain per table: a day row (daily_zone_stats / daily_camera_stats) holds exactly the sums of its
   hour rows (zone_hourly / camera_hourly, named by `hourly`), keyed by `key` (zone_id or camera_id). */
SELECT d.*
FROM @this_model AS d
LEFT JOIN (
  SELECT local_date, @key AS k, SUM(sessions) AS sessions, SUM(occupied_seconds) AS occupied,
         SUM(person_seconds) AS person_seconds
  FROM @hourly
  WHERE local_date IN (SELECT local_date FROM @this_model)
  GROUP BY local_date, @key
) AS h
  ON h.local_date = d.local_date AND h.k = d.@key
WHERE d.sessions <> COALESCE(h.sessions, 0)
  OR ABS(d.occupied_seconds - COALESCE(h.occupied, 0)) > 1e-3
  OR ABS(d.person_seconds - COALESCE(h.person_seconds, 0)) > 1e-3
