AUDIT (name no_overlapping_sessions);
/* A visitor (a chain of linked tracks) is in one place at a time: its next session starts after this one ends. */
SELECT *
FROM (
  SELECT
    camera_id, visitor_id, session_id, exit_time,
    LEAD(entry_time) OVER (PARTITION BY camera_id, visitor_id ORDER BY entry_time) AS next_entry
  FROM @this_model
) AS s
WHERE next_entry <= exit_time
