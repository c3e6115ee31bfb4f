AUDIT (name daily_dwell_matches_sessions);
/* Reconciliation: a zone-day's session count and dwell equal the sum over analytics.sessions. */
SELECT d.*
FROM @this_model AS d
LEFT JOIN (
  SELECT local_date, zone_id, COUNT(*) AS n, SUM(duration_seconds) AS dwell
  FROM analytics.sessions
  WHERE local_date IN (SELECT local_date FROM @this_model)
  GROUP BY local_date, zone_id
) AS s
  ON s.local_date = d.local_date AND s.zone_id = d.zone_id
WHERE d.sessions <> COALESCE(s.n, 0) OR ABS(d.total_dwell_seconds - COALESCE(s.dwell, 0)) > 1e-3
