MODEL (
  name analytics.camera_hourly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column hour_start, batch_size 24, lookback 24),
  grain (camera_id, hour_start),
  audits (
    unique_combination_of_columns(columns := (camera_id, hour_start)),
    not_null(columns := (local_date, local_hour, hour_start, hour_end, hour_start_local, camera_id, camera_name, occupied_seconds, sessions, camera_uptime)),
    accepted_range(column := utilization, min_v := 0, max_v := 1),
    accepted_range(column := productivity, min_v := 0, max_v := 1),
    accepted_range(column := idle_ratio, min_v := 0, max_v := 1),
    accepted_range(column := camera_uptime, min_v := 0, max_v := 1),
    accepted_range(column := local_hour, min_v := 0, max_v := 23),
    known_ids(column := camera_id, source := ref.cameras),
    forall(criteria := (
      hour_end > hour_start,
      occupied_seconds >= 0, person_seconds >= 0, scheduled_seconds >= 0, active_seconds >= 0, idle_seconds >= 0,
      sessions >= 0, mean_dwell_seconds >= 0,
      occupied_seconds <= @seconds_between(hour_start, hour_end) + 1e-3,
      ABS(productivity + idle_ratio - 1) <= 1e-6
    ))
  ),
  description 'Grain: one row per camera and hour (every camera, every hour of every day built), over all the camera''s zones together: occupied time (someone in any of its zones), utilization, productivity, idle ratio, sessions, dwell and distinct people (visitors, not track fragments), and the camera''s uptime. Sessions, dwell and active/idle time count in the hour of the session''s entry, so the counts (except unique_visitors) and seconds sum to analytics.daily_camera_stats over a day.',
  column_descriptions (
    local_date = 'site-local day of the hour',
    local_hour = 'site-local hour of day 0..23 of hour_start',
    hour_start = 'hour start (UTC)',
    hour_end = 'hour end (UTC, exclusive)',
    hour_start_local = 'hour start, site-local wall-clock time',
    camera_id = 'camera (analytics.cameras)',
    camera_name = 'camera name from the site config',
    scheduled_seconds = 'scheduled working time inside the hour (breaks excluded)',
    occupied_seconds = 'time with at least one person in any zone of the camera',
    occupied_working_seconds = 'occupied time inside scheduled working time',
    person_seconds = 'sum over people of time present in the camera''s zones',
    utilization = 'occupied_working_seconds / scheduled_seconds; null without scheduled time',
    sessions = 'sessions entering in the hour',
    total_dwell_seconds = 'sum of the durations of the sessions entering in the hour',
    mean_dwell_seconds = 'mean session duration; null without sessions',
    active_seconds = 'active seconds of the sessions entering in the hour',
    idle_seconds = 'idle seconds of the sessions entering in the hour',
    productivity = 'active / (active + idle); null without sessions',
    idle_ratio = 'idle / (active + idle); null without sessions',
    camera_uptime = 'share of the hour''s health windows in which the camera delivered frames',
    unique_visitors = 'distinct people present in any zone of the camera at some moment of the hour (worker_id when known, else the visitor: the track fragments of one person, linked by analytics.track_links); not additive: a person present in several hours counts in each'
  )
);


/* Shared with analytics.zone_hourly (transforms/macros/sightline.py): every hour of every camera, the columns
   listed above in that order. */
SELECT
  m.local_date,
  m.local_hour,
  m.hour_start,
  m.hour_end,
  m.hour_start_local,
  m.camera_id,
  m.camera_name,
  m.scheduled_seconds,
  m.occupied_seconds,
  m.occupied_working_seconds,
  m.person_seconds,
  m.utilization,
  m.sessions,
  m.total_dwell_seconds,
  m.mean_dwell_seconds,
  m.active_seconds,
  m.idle_seconds,
  m.productivity,
  m.idle_ratio,
  m.camera_uptime,
  m.unique_visitors
FROM @hourly_measures(camera) AS m
