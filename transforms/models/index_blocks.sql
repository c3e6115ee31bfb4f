MODEL (
  name analytics.index_blocks,
  kind VIEW,
  grain (local_date, index_number),
  audits (
    unique_combination_of_columns(columns := (local_date, index_number)),
    not_null(columns := (local_date, index_number, scheduled_start, scheduled_end, scheduled_start_local, scheduled_end_local))
  ),
  description 'Dimension: the index blocks of each workday (the working time cut into equal blocks), scheduled start and end in UTC and in site-local time. Filled for every day with landed data. analytics.index_records holds what happened in each block.',
  column_descriptions (
    local_date = 'site-local workday',
    index_number = 'index block 1..indices of the day',
    scheduled_start = 'block start (UTC)',
    scheduled_end = 'block end (UTC, exclusive; includes any break the block meets)',
    scheduled_start_local = 'block start, site-local wall-clock time',
    scheduled_end_local = 'block end, site-local wall-clock time',
    working_seconds = 'scheduled working time of the block (breaks excluded)'
  )
);

SELECT
  it.date AS local_date,
  it.index_number,
  it.scheduled_start,
  it.scheduled_end,
  @local_ts(it.scheduled_start) AS scheduled_start_local,
  @local_ts(it.scheduled_end) AS scheduled_end_local,
  CAST(it.working_seconds AS DOUBLE) AS working_seconds
FROM ref.index_timeline AS it
