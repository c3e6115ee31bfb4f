"""Macros shared by the Sightline models: the batch's dt.UTC bounds, site-local days and the working schedule.

Everything here renders plain SQL that runs unchanged on DuckDB and PostgreSQL. The schedule (timezone,
workdays, working minutes) comes from SQLMesh variables built from the site config.
"""

import datetime as dt
import re
import zoneinfo

from sqlglot import exp
from sqlmesh import macro


def _ts_literal(value: dt.datetime) -> str:
    return f"CAST('{value.astimezone(dt.UTC).isoformat(sep=' ')}' AS TIMESTAMPTZ)"


def _bounds(evaluator) -> tuple:
    """The batch's [start, end) in dt.UTC (SQLMesh passes an inclusive end)."""
    start = evaluator.locals.get("start_dt") or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    end = evaluator.locals.get("end_dt") or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC) + dt.timedelta(microseconds=1)


@macro()
def batch_start(evaluator) -> exp.Expr:
    """Start of the interval being built, as a TIMESTAMPTZ literal."""
    return exp.maybe_parse(_ts_literal(_bounds(evaluator)[0]), dialect="duckdb")


@macro()
def batch_end(evaluator) -> exp.Expr:
    """Exclusive end of the interval being built, as a TIMESTAMPTZ literal."""
    return exp.maybe_parse(_ts_literal(_bounds(evaluator)[1]), dialect="duckdb")


def _epoch_us(ts: exp.Expr) -> str:
    return f"CAST(ROUND(EXTRACT(EPOCH FROM {ts.sql('duckdb')}) * 1000000) AS BIGINT)"


@macro()
def epoch_us(evaluator, ts: exp.Expr) -> exp.Expr:
    """Microseconds since the epoch as BIGINT (exact on both engines)."""
    return exp.maybe_parse(_epoch_us(ts), dialect="duckdb")


@macro()
def utc_trunc(evaluator, unit: exp.Expr, ts: exp.Expr) -> exp.Expr:
    """date_trunc in dt.UTC whatever the session time zone, back as TIMESTAMPTZ (cast, so SQLMesh knows the
    column's type: the asset's column schema in Dagster comes from it). On PostgreSQL, units of fixed length
    are binned from the epoch (date_bin: arithmetic, where two time zone conversions per row cost a fifth of
    heatmap_hourly's scan); the same instants."""
    if evaluator.gateway == "postgres" and unit.name.lower() in ("second", "minute", "hour", "day"):
        return exp.maybe_parse(
            f"CAST(DATE_BIN(INTERVAL '1 {unit.name}', {ts.sql('duckdb')},"
            " CAST('1970-01-01 00:00:00+00:00' AS TIMESTAMPTZ)) AS TIMESTAMPTZ)",
            dialect="duckdb",
        )
    return exp.maybe_parse(
        f"CAST(DATE_TRUNC('{unit.name}', {ts.sql('duckdb')} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        " AS TIMESTAMPTZ)",
        dialect="duckdb",
    )


@macro()
def local_date(evaluator, ts: exp.Expr) -> exp.Expr:
    """The site-local calendar day of a dt.UTC timestamp."""
    tz = evaluator.var("timezone")
    return exp.maybe_parse(f"CAST({ts.sql('duckdb')} AT TIME ZONE '{tz}' AS DATE)", dialect="duckdb")


def _local_days(evaluator, pad_days: int) -> list:
    tz = zoneinfo.ZoneInfo(evaluator.var("timezone"))
    start, end = _bounds(evaluator)
    first = start.astimezone(tz).date() - dt.timedelta(days=pad_days)
    last = (end - dt.timedelta(microseconds=1)).astimezone(tz).date() + dt.timedelta(days=pad_days)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _table(columns: list[tuple[str, str]], rows: list[tuple[str, ...]]) -> exp.Expr:
    """A typed inline table: SELECT ... UNION ALL SELECT ..., or an empty typed one."""
    first = "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {n}" for n, t in columns) + " WHERE 1 = 0"
    parts = [first] + [
        "SELECT " + ", ".join(f"{v} AS {n}" for v, (n, _) in zip(row, columns, strict=True)) for row in rows
    ]
    return exp.maybe_parse("(" + " UNION ALL ".join(parts) + ")", dialect="duckdb")


def _day_minutes(evaluator, day: dt.date) -> list:
    """The day's working minutes: an override for the day, else the schedule change in force (or the base
    schedule) when the day is one of its workdays. Same rule as ingestion.site.Site.schedule_on."""
    iso = day.isoformat()
    for o in evaluator.var("schedule_overrides") or []:
        if o["start"] <= iso <= o["end"]:
            return o["working_minutes"]
    workdays, minutes = evaluator.var("workdays") or [], evaluator.var("working_minutes") or []
    for c in evaluator.var("schedule_changes") or []:
        if c["effective"] <= iso:
            workdays, minutes = c["workdays"], c["working_minutes"]
    return minutes if day.weekday() in set(workdays) else []


@macro()
def working_intervals(evaluator) -> exp.Expr:
    """Inline table (local_date, work_start, work_end): the schedule's working time, breaks excluded, in
    UTC, for every site-local day touching the batch (one day of padding each side). Same rule as
    ingestion.site.Site.working_intervals: on a DST day the boundaries keep their order (running maximum)."""
    tz = zoneinfo.ZoneInfo(evaluator.var("timezone"))
    rows = []
    for day in _local_days(evaluator, 1):
        midnight = dt.datetime.combine(day, dt.datetime.min.time())
        bounds = []
        for a, b in _day_minutes(evaluator, day):
            for minute in (a, b):
                utc = (midnight + dt.timedelta(minutes=minute)).replace(tzinfo=tz).astimezone(dt.UTC)
                bounds.append(max(utc, bounds[-1]) if bounds else utc)
        for start, end in zip(bounds[::2], bounds[1::2], strict=True):
            if end > start:
                rows.append((f"CAST('{day.isoformat()}' AS DATE)", _ts_literal(start), _ts_literal(end)))
    return _table([("local_date", "DATE"), ("work_start", "TIMESTAMPTZ"), ("work_end", "TIMESTAMPTZ")], rows)


@macro()
def periods(evaluator) -> exp.Expr:
    """Inline table (grain, local_date, period_start, period_end): every hour and every site-local day
    that starts inside the batch."""
    tz = zoneinfo.ZoneInfo(evaluator.var("timezone"))
    start, end = _bounds(evaluator)
    rows = []
    for day in _local_days(evaluator, 0):
        day_start = dt.datetime.combine(day, dt.datetime.min.time()).replace(tzinfo=tz)
        day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.datetime.min.time()).replace(tzinfo=tz)
        if start <= day_start < end:
            day_literal = f"CAST('{day.isoformat()}' AS DATE)"
            rows.append(("'day'", day_literal, _ts_literal(day_start), _ts_literal(day_end)))
    hour = start.replace(minute=0, second=0, microsecond=0)
    hour = hour if hour >= start else hour + dt.timedelta(hours=1)
    while hour < end:
        local = hour.astimezone(tz).date()
        rows.append(
            (
                "'hour'",
                f"CAST('{local.isoformat()}' AS DATE)",
                _ts_literal(hour),
                _ts_literal(hour + dt.timedelta(hours=1)),
            )
        )
        hour += dt.timedelta(hours=1)
    return _table(
        [
            ("grain", "VARCHAR"),
            ("local_date", "DATE"),
            ("period_start", "TIMESTAMPTZ"),
            ("period_end", "TIMESTAMPTZ"),
        ],
        rows,
    )


def _local_ts(evaluator, ts: exp.Expr) -> str:
    return f"CAST({ts.sql('duckdb')} AT TIME ZONE '{evaluator.var('timezone')}' AS TIMESTAMP)"


@macro()
def local_ts(evaluator, ts: exp.Expr) -> exp.Expr:
    """The site-local wall-clock time of a UTC timestamp, as a TIMESTAMP without time zone: what a BI
    tool groups by when it truncates to the day or hour (it truncates TIMESTAMPTZ in UTC)."""
    return exp.maybe_parse(_local_ts(evaluator, ts), dialect="duckdb")


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@macro()
def schedule_summary(evaluator) -> exp.Expr:
    """The working schedule in one readable line, e.g. 'Mon-Fri 08:00-12:00, 13:00-17:00 (Asia/Bangkok)'."""
    days = sorted(set(evaluator.var("workdays") or []))
    runs: list[list[int]] = []
    for d in days:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    day_text = (
        ", ".join(
            _DAY_NAMES[r[0]] if len(r) == 1 else f"{_DAY_NAMES[r[0]]}-{_DAY_NAMES[r[-1]]}" for r in runs
        )
        or "no workdays"
    )
    hours = ", ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in evaluator.var("working_minutes") or [])
    text = f"{day_text} {hours} ({evaluator.var('timezone')})".replace("'", "''")
    return exp.maybe_parse(f"'{text}'", dialect="duckdb")


@macro()
def jsonb(evaluator, value: exp.Expr) -> exp.Expr:
    """The JSON text `value` as jsonb on PostgreSQL (groupable, comparable, printed as JSON) and JSON on
    DuckDB. Not a CAST to JSONB: the models' DuckDB dialect reads JSONB as JSON. On PostgreSQL the column
    type is then left to the engine (SQLMesh creates the table from the query), which makes it jsonb."""
    as_json = f"CAST({value.sql('duckdb')} AS JSON)"
    if evaluator.gateway == "postgres":
        return exp.maybe_parse(f"TO_JSONB({as_json})", dialect="duckdb")
    return exp.maybe_parse(as_json, dialect="duckdb")


# ------------------------------------------------------------------------- time units and health windows
# Durations are computed in integer microseconds (exact on both engines) and reported as DOUBLE seconds.


def _literal(value: object) -> str:
    """A SQLMesh variable's value as the literal `@name` renders to (SQLMesh finds the variables a macro reads
    in its `evaluator.var('name')` calls, so each macro names its own)."""
    return exp.convert(value).sql("duckdb")


@macro()
def seconds_to_us(evaluator, seconds: exp.Expr) -> exp.Expr:
    """A number of seconds (a threshold, a DOUBLE column) as whole microseconds (BIGINT)."""
    return exp.maybe_parse(f"CAST(ROUND({seconds.sql('duckdb')} * 1000000) AS BIGINT)", dialect="duckdb")


@macro()
def us_to_seconds(evaluator, us: exp.Expr) -> exp.Expr:
    """Microseconds (BIGINT) as DOUBLE seconds."""
    return exp.maybe_parse(f"CAST({us.sql('duckdb')} AS DOUBLE) / 1000000", dialect="duckdb")


@macro()
def seconds_between(evaluator, start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """end - start in DOUBLE seconds, computed in microseconds (exact on both engines)."""
    return exp.maybe_parse(
        f"CAST({_epoch_us(end)} - {_epoch_us(start)} AS DOUBLE) / 1000000", dialect="duckdb"
    )


def _health_window_us(evaluator) -> str:
    return f"({_literal(evaluator.var('health_window_seconds'))} * 1000000)"


@macro()
def health_window(evaluator, ts: exp.Expr) -> exp.Expr:
    """Number of the raw.camera_health window (health_window_seconds long, from the epoch) holding ts."""
    return exp.maybe_parse(
        f"CAST(FLOOR({_epoch_us(ts)} / {_health_window_us(evaluator)}) AS BIGINT)", dialect="duckdb"
    )


@macro()
def first_health_window(evaluator, ts: exp.Expr) -> exp.Expr:
    """Number of the first health window starting at or after ts."""
    return exp.maybe_parse(
        f"CAST(CEIL({_epoch_us(ts)} / {_health_window_us(evaluator)}) AS BIGINT)", dialect="duckdb"
    )


@macro()
def health_window_start(evaluator, window_no: exp.Expr) -> exp.Expr:
    """The UTC instant health window `window_no` starts."""
    seconds = _literal(evaluator.var("health_window_seconds"))
    return exp.maybe_parse(
        f"CAST(TO_TIMESTAMP({window_no.sql('duckdb')} * {seconds}) AS TIMESTAMPTZ)", dialect="duckdb"
    )


@macro()
def uptime(evaluator, windows_up: exp.Expr, start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Share of the health windows of [start, end) in which the camera delivered frames (`windows_up`
    windows, null as 0), at most 1."""
    windows = f"(CAST({_epoch_us(end)} - {_epoch_us(start)} AS DOUBLE) / {_health_window_us(evaluator)})"
    return exp.maybe_parse(
        f"LEAST(CAST(COALESCE({windows_up.sql('duckdb')}, 0) AS DOUBLE) / {windows}, 1.0)", dialect="duckdb"
    )


@macro()
def local_hour(evaluator, ts: exp.Expr) -> exp.Expr:
    """The site-local hour of day (0..23) of a UTC timestamp, as INT."""
    return exp.maybe_parse(f"CAST(EXTRACT(HOUR FROM {_local_ts(evaluator, ts)}) AS INT)", dialect="duckdb")


@macro()
def may_overlap_batch(evaluator, entry_time: exp.Expr) -> exp.Expr:
    """Sessions (by entry_time) that can overlap the batch: entered before its end, and at most a day plus
    session_lookahead_hours before its start (a visit is followed at most that far past its entry day)."""
    ts, (start, end) = entry_time.sql("duckdb"), _bounds(evaluator)
    return exp.maybe_parse(
        f"{ts} < {_ts_literal(end)} AND {ts} >= {_ts_literal(start)} - INTERVAL '1 day'"
        f" - INTERVAL '1 hour' * {_literal(evaluator.var('session_lookahead_hours'))}",
        dialect="duckdb",
    )


# ------------------------------------------------------------------------------------ names and JSON


@macro()
def zone_name(evaluator, zone_id: exp.Expr) -> exp.Expr:
    """The zone's name from ref.zones (a scalar subquery: only readers of the column pay for it)."""
    return exp.maybe_parse(
        f"(SELECT z.name FROM ref.zones AS z WHERE z.zone_id = {zone_id.sql('duckdb')})", dialect="duckdb"
    )


@macro()
def camera_name(evaluator, camera_id: exp.Expr) -> exp.Expr:
    """The camera's name from ref.cameras (a scalar subquery)."""
    sql = f"(SELECT c.name FROM ref.cameras AS c WHERE c.camera_id = {camera_id.sql('duckdb')})"
    return exp.maybe_parse(sql, dialect="duckdb")


@macro()
def json_num(evaluator, value: exp.Expr) -> exp.Expr:
    """A number as JSON text with three decimals (exact decimal rounding, the same text on both engines)."""
    return exp.maybe_parse(
        f"CAST(ROUND(CAST({value.sql('duckdb')} AS DECIMAL(18, 6)), 3) AS VARCHAR)", dialect="duckdb"
    )


@macro()
def json_dict(evaluator, *pairs: exp.Expr) -> exp.Expr:
    """A flat JSON object as text from alternating key literals and values: @json_dict('idle_seconds',
    @json_num(x), 'threshold_seconds', @excessive_idle_seconds) -> '{"idle_seconds": 1.500, ...}'. Values
    are numbers (cast to text as they are; @json_num rounds to three decimals) or JSON text."""
    if not pairs or len(pairs) % 2:
        raise ValueError("json_dict takes key, value pairs")
    parts = []
    for i in range(0, len(pairs), 2):
        key = pairs[i].name
        if not key or not key.replace("_", "").isalnum():
            raise ValueError(f"json_dict: key {pairs[i].sql()} must be a plain string literal")
        parts.append(("{" if i == 0 else ", ") + f'"{key}": ')
        parts.append(pairs[i + 1])

    def text(value: exp.Expr) -> str:
        if isinstance(value, exp.Cast) and value.to.is_type(exp.DType.VARCHAR, exp.DType.TEXT):
            return value.sql("duckdb")  # already text (@json_num)
        return f"CAST({value.sql('duckdb')} AS VARCHAR)"

    sql = " || ".join(f"'{p}'" if isinstance(p, str) else text(p) for p in parts)
    return exp.maybe_parse(f"{sql} || '}}'", dialect="duckdb")


# ------------------------------------------------------------------------------------------ enumerations


@macro()
def enum_values(evaluator, name: exp.Expr) -> exp.Expr:
    """The values of an enumeration of ingestion.vocabulary as a tuple of strings, e.g. for an audit:
    accepted_values(column := status, is_in := @enum_values('session_status'))."""
    from ingestion.vocabulary import ENUMERATIONS

    values = ENUMERATIONS[name.name]
    return exp.Tuple(expressions=[exp.Literal.string(v) for v in values])


@macro()
def at_work(evaluator, zone_type: exp.Expr) -> exp.Expr:
    """Whether a zone type counts as work (ingestion.vocabulary.WORK_ZONE_TYPES); false for no zone."""
    from ingestion.vocabulary import WORK_ZONE_TYPES

    values = ", ".join(f"'{v}'" for v in WORK_ZONE_TYPES)
    return exp.maybe_parse(f"COALESCE({zone_type.sql('duckdb')} IN ({values}), FALSE)", dialect="duckdb")


# ---------------------------------------------------------------- per-scope measures (zone | camera)
# The hour and day grains of the two scopes share their SQL through these macros: zone_hourly and
# camera_hourly (@hourly_measures), daily_zone_stats and daily_camera_stats (@day_sums_of_hours), and all
# four count people the same way (@people_present).

_SCOPES = {  # scope -> (key column, the scope's rows: its columns in the marts, camera_id among them)
    "zone": (
        "zone_id",
        "SELECT z.zone_id, z.name AS zone_name, z.zone_type, z.camera_id, "
        "c.name AS camera_name FROM ref.zones AS z "
        "LEFT JOIN ref.cameras AS c ON c.camera_id = z.camera_id",
    ),
    "camera": ("camera_id", "SELECT c.camera_id, c.name AS camera_name FROM ref.cameras AS c"),
}

# A person: the upstream identity when known, else the visitor (analytics.track_links: track fragments of
# one person on one camera, joined). Never the track: a person the tracker broke into fragments is one.
PERSON_SQL = "COALESCE({s}.worker_id, {s}.camera_id || ':' || CAST({s}.visitor_id AS VARCHAR))"


def _scope(scope: exp.Expr) -> tuple[str, str, str]:
    name = scope.name.lower()
    if name not in _SCOPES:
        raise ValueError(f"scope must be one of {sorted(_SCOPES)}, not {name!r}")
    return (name, *_SCOPES[name])


def _expand(evaluator, sql: str) -> exp.Expr:
    """Parse SQL written with the project's macros and variables, rendered here (SQLMesh does not expand the
    macros inside what a macro returns): @periods(), @batch_start(), @batch_end(), @session_lookahead_hours
    and @health_window_seconds as they are, and <<epoch_us:X>> / <<local_ts:X>> for @epoch_us(X) /
    @local_ts(X)."""

    def call(m: re.Match) -> str:
        fn = {"epoch_us": epoch_us, "local_ts": local_ts}[m.group(1)]
        return fn(evaluator, exp.maybe_parse(m.group(2), dialect="duckdb")).sql("duckdb")

    sql = re.sub(r"<<(epoch_us|local_ts):(.+?)>>", call, sql)
    for name, value in (
        ("@periods()", periods(evaluator)),
        ("@batch_start()", batch_start(evaluator)),
        ("@batch_end()", batch_end(evaluator)),
    ):
        sql = sql.replace(name, value.sql("duckdb"))
    sql = sql.replace("@session_lookahead_hours", str(evaluator.var("session_lookahead_hours")))
    sql = sql.replace("@health_window_seconds", str(evaluator.var("health_window_seconds")))
    return exp.maybe_parse(sql, dialect="duckdb")


@macro()
def person(evaluator, sessions: exp.Expr) -> exp.Expr:
    """The person of a session row (alias `sessions`): worker_id when known upstream, else camera:visitor."""
    return exp.maybe_parse(PERSON_SQL.format(s=sessions.name), dialect="duckdb")


def _people_present_sql(grain: str, key: str) -> str:
    """(period_start, <key>, unique_visitors): distinct people with a visit overlapping each period of
    `grain` starting inside the batch (visits entered up to a day and the lookahead before it count)."""
    return f"""(
  SELECT p.period_start, s.{key}, COUNT(DISTINCT {PERSON_SQL.format(s="s")}) AS unique_visitors
  FROM @periods() AS p
  JOIN analytics.sessions AS s ON s.entry_time < p.period_end AND s.exit_time > p.period_start
  WHERE p.grain = '{grain}'
    AND s.entry_time < @batch_end()
    AND s.entry_time >= @batch_start() - INTERVAL '1 day' - INTERVAL '1 hour' * @session_lookahead_hours
    AND s.exit_time > @batch_start()
  GROUP BY p.period_start, s.{key}
)"""


@macro()
def people_present(evaluator, grain: exp.Expr, scope: exp.Expr) -> exp.Expr:
    """Inline table (period_start, zone_id | camera_id, unique_visitors): per hour or site-local day
    (`grain`) starting in the batch and per zone or camera (`scope`), the distinct people (@person) present
    at some moment of the period (a visit overlapping it)."""
    _, key, _ = _scope(scope)
    return _expand(evaluator, _people_present_sql(grain.name.lower(), key))


@macro()
def hourly_measures(evaluator, scope: exp.Expr) -> exp.Expr:
    """Inline table: one row per hour starting in the batch and per zone (scope zone: zone_id, zone_name,
    zone_type, camera_id, camera_name) or camera (scope camera: camera_id, camera_name), every hour of
    every zone or camera, with the hour's columns (local_date, local_hour, hour_start, hour_end,
    hour_start_local) and measures (presence from
    analytics.zone_presence, sessions by entry hour, people present, camera uptime). The body of
    analytics.zone_hourly and analytics.camera_hourly, whose column comments describe the measures."""
    name, key, rows = _scope(scope)
    return _expand(
        evaluator,
        f"""(
WITH hours AS (
  SELECT local_date, period_start AS hour_start, period_end AS hour_end
  FROM @periods() AS p WHERE grain = 'hour'
), presence AS (
  SELECT
    h.hour_start, pr.{key},
    SUM(CASE WHEN pr.people > 0 THEN ov.us ELSE 0 END) AS occupied_us,
    SUM(CASE WHEN pr.people > 0 AND pr.in_working_time THEN ov.us ELSE 0 END) AS occupied_working_us,
    SUM(CASE WHEN pr.in_working_time THEN ov.us ELSE 0 END) AS scheduled_us,
    SUM(ov.us * pr.people) AS person_us
  FROM hours AS h
  JOIN analytics.zone_presence AS pr
    ON pr.segment_start < h.hour_end AND pr.segment_end > h.hour_start
  CROSS JOIN LATERAL (
    SELECT <<epoch_us:LEAST(pr.segment_end, h.hour_end)>>
      - <<epoch_us:GREATEST(pr.segment_start, h.hour_start)>> AS us
  ) AS ov
  WHERE pr.scope = '{name}' AND pr.segment_start >= @batch_start() AND pr.segment_start < @batch_end()
  GROUP BY h.hour_start, pr.{key}
), session_stats AS (
  SELECT
    h.hour_start, s.{key},
    COUNT(*) AS sessions,
    SUM(s.duration_seconds) AS dwell_seconds,
    SUM(s.total_active_seconds) AS active_seconds,
    SUM(s.total_idle_seconds) AS idle_seconds
  FROM hours AS h
  JOIN analytics.sessions AS s ON s.entry_time >= h.hour_start AND s.entry_time < h.hour_end
  WHERE s.entry_time >= @batch_start() AND s.entry_time < @batch_end()
  GROUP BY h.hour_start, s.{key}
), people AS {_people_present_sql("hour", key)}, health AS (
  SELECT
    h.hour_start, ch.camera_id,
    COUNT(DISTINCT CASE WHEN ch.frames_read > 0
      THEN CAST(FLOOR(<<epoch_us:ch.window_start>> / (@health_window_seconds * 1000000)) AS BIGINT) END)
      AS windows_up
  FROM hours AS h
  JOIN raw.camera_health AS ch ON ch.window_start >= h.hour_start AND ch.window_start < h.hour_end
  WHERE ch.window_start >= @batch_start() AND ch.window_start < @batch_end()
  GROUP BY h.hour_start, ch.camera_id
)
SELECT
  h.local_date,
  CAST(EXTRACT(HOUR FROM <<local_ts:h.hour_start>>) AS INT) AS local_hour,
  h.hour_start,
  h.hour_end,
  <<local_ts:h.hour_start>> AS hour_start_local,
  k.*,
  CAST(COALESCE(pr.scheduled_us, 0) AS DOUBLE) / 1000000 AS scheduled_seconds,
  CAST(COALESCE(pr.occupied_us, 0) AS DOUBLE) / 1000000 AS occupied_seconds,
  CAST(COALESCE(pr.occupied_working_us, 0) AS DOUBLE) / 1000000 AS occupied_working_seconds,
  CAST(COALESCE(pr.person_us, 0) AS DOUBLE) / 1000000 AS person_seconds,
  CAST(pr.occupied_working_us AS DOUBLE) / NULLIF(CAST(pr.scheduled_us AS DOUBLE), 0) AS utilization,
  CAST(COALESCE(ss.sessions, 0) AS BIGINT) AS sessions,
  CAST(COALESCE(ss.dwell_seconds, 0) AS DOUBLE) AS total_dwell_seconds,
  ss.dwell_seconds / NULLIF(ss.sessions, 0) AS mean_dwell_seconds,
  CAST(COALESCE(ss.active_seconds, 0) AS DOUBLE) AS active_seconds,
  CAST(COALESCE(ss.idle_seconds, 0) AS DOUBLE) AS idle_seconds,
  ss.active_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS productivity,
  ss.idle_seconds / NULLIF(ss.active_seconds + ss.idle_seconds, 0) AS idle_ratio,
  LEAST(
    CAST(COALESCE(hl.windows_up, 0) AS DOUBLE)
      / (CAST(<<epoch_us:h.hour_end>> - <<epoch_us:h.hour_start>> AS DOUBLE)
         / (@health_window_seconds * 1000000)),
    1.0
  ) AS camera_uptime,
  CAST(COALESCE(pp.unique_visitors, 0) AS BIGINT) AS unique_visitors
FROM hours AS h
CROSS JOIN ({rows}) AS k
LEFT JOIN presence AS pr ON pr.hour_start = h.hour_start AND pr.{key} = k.{key}
LEFT JOIN session_stats AS ss ON ss.hour_start = h.hour_start AND ss.{key} = k.{key}
LEFT JOIN people AS pp ON pp.period_start = h.hour_start AND pp.{key} = k.{key}
LEFT JOIN health AS hl ON hl.hour_start = h.hour_start AND hl.camera_id = k.camera_id
)""",
    )


@macro()
def day_sums_of_hours(evaluator, hourly: exp.Expr, key: exp.Expr) -> exp.Expr:
    """Inline table (local_date, period_start, period_end, <key>, scheduled_seconds, occupied_seconds,
    occupied_working_seconds, person_seconds): per site-local day starting in the batch, the sums of the
    hour rows of `hourly` (analytics.zone_hourly or analytics.camera_hourly, keyed by `key`). A day grain
    is the sum of its hours: every hour of every zone and camera has a row."""
    table, k = hourly.sql("duckdb"), key.name
    return _expand(
        evaluator,
        f"""(
  SELECT
    d.local_date, d.period_start, d.period_end, hr.{k},
    SUM(hr.scheduled_seconds) AS scheduled_seconds,
    SUM(hr.occupied_seconds) AS occupied_seconds,
    SUM(hr.occupied_working_seconds) AS occupied_working_seconds,
    SUM(hr.person_seconds) AS person_seconds
  FROM @periods() AS d
  JOIN {table} AS hr ON hr.hour_start >= d.period_start AND hr.hour_start < d.period_end
  WHERE d.grain = 'day' AND hr.hour_start >= @batch_start() AND hr.hour_start < @batch_end()
  GROUP BY d.local_date, d.period_start, d.period_end, hr.{k}
)""",
    )
