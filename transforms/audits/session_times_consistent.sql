AUDIT (name session_times_consistent);
/* A session's times add up: exit after entry, duration = exit - entry, active + idle = duration, no part
   negative, the longest idle stretch within the idle time. (A kept visit may be shorter than
   min_session_seconds when dropouts hid its edges: analytics.sessions.) */
SELECT *
FROM @this_model
WHERE exit_time < entry_time
  OR total_active_seconds < 0
  OR total_idle_seconds < 0
  OR ABS(total_active_seconds + total_idle_seconds - duration_seconds) > 1e-3
  OR ABS(@seconds_between(entry_time, exit_time) - duration_seconds) > 1e-3
  OR max_idle_streak_seconds > total_idle_seconds + 1e-6
