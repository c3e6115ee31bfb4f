"""Macros shared by the Sightline models: the batch's dt.UTC bounds, site-local days and the working schedule.

Everything here renders plain SQL that runs unchanged on DuckDB and PostgreSQL. The schedule (timezone,
workdays, working minutes) comes from SQLMesh variables built from the site config.
"""

import datetime as dt
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
    column's type: the asset's column schema in Dagster comes from it)."""
    return exp.maybe_parse(
        f"CAST(DATE_TRUNC('{unit.name}', {ts.sql('duckdb')} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        " AS TIMESTAMPTZ)",
        dialect="duckdb")


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
    parts = [first] + ["SELECT " + ", ".join(f"{v} AS {n}" for v, (n, _) in zip(row, columns, strict=True))
                        for row in rows]
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
        rows.append(("'hour'", f"CAST('{local.isoformat()}' AS DATE)", _ts_literal(hour),
                     _ts_literal(hour + dt.timedelta(hours=1))))
        hour += dt.timedelta(hours=1)
    return _table([("grain", "VARCHAR"), ("local_date", "DATE"), ("period_start", "TIMESTAMPTZ"),
                   ("period_end", "TIMESTAMPTZ")], rows)


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
    day_text = ", ".join(_DAY_NAMES[r[0]] if len(r) == 1 else f"{_DAY_NAMES[r[0]]}-{_DAY_NAMES[r[-1]]}"
                         for r in runs) or "no workdays"
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
    return exp.maybe_parse(f"CAST({_epoch_us(end)} - {_epoch_us(start)} AS DOUBLE) / 1000000",
                           dialect="duckdb")


def _health_window_us(evaluator) -> str:
    return f"({_literal(evaluator.var('health_window_seconds'))} * 1000000)"


@macro()
def health_window(evaluator, ts: exp.Expr) -> exp.Expr:
    """Number of the raw.camera_health window (health_window_seconds long, from the epoch) holding ts."""
    return exp.maybe_parse(f"CAST(FLOOR({_epoch_us(ts)} / {_health_window_us(evaluator)}) AS BIGINT)",
                           dialect="duckdb")


@macro()
def first_health_window(evaluator, ts: exp.Expr) -> exp.Expr:
    """Number of the first health window starting at or after ts."""
    return exp.maybe_parse(f"CAST(CEIL({_epoch_us(ts)} / {_health_window_us(evaluator)}) AS BIGINT)",
                           dialect="duckdb")


@macro()
def health_window_start(evaluator, window_no: exp.Expr) -> exp.Expr:
    """The UTC instant health window `window_no` starts."""
    seconds = _literal(evaluator.var('health_window_seconds'))
    return exp.maybe_parse(f"CAST(TO_TIMESTAMP({window_no.sql('duckdb')} * {seconds}) AS TIMESTAMPTZ)",
                           dialect="duckdb")


@macro()
def uptime(evaluator, windows_up: exp.Expr, start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Share of the health windows of [start, end) in which the camera delivered frames (`windows_up`
    windows, null as 0), at most 1."""
    windows = f"(CAST({_epoch_us(end)} - {_epoch_us(start)} AS DOUBLE) / {_health_window_us(evaluator)})"
    return exp.maybe_parse(f"LEAST(CAST(COALESCE({windows_up.sql('duckdb')}, 0) AS DOUBLE) / {windows}, 1.0)",
                           dialect="duckdb")


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
        dialect="duckdb")


# ------------------------------------------------------------------------------------ names and JSON


@macro()
def zone_name(evaluator, zone_id: exp.Expr) -> exp.Expr:
    """The zone's name from ref.zones (a scalar subquery: only readers of the column pay for it)."""
    return exp.maybe_parse(f"(SELECT z.name FROM ref.zones AS z WHERE z.zone_id = {zone_id.sql('duckdb')})",
                           dialect="duckdb")


@macro()
def camera_name(evaluator, camera_id: exp.Expr) -> exp.Expr:
    """The camera's name from ref.cameras (a scalar subquery)."""
    sql = f"(SELECT c.name FROM ref.cameras AS c WHERE c.camera_id = {camera_id.sql('duckdb')})"
    return exp.maybe_parse(sql, dialect="duckdb")


@macro()
def json_num(evaluator, value: exp.Expr) -> exp.Expr:
    """A number as JSON text with three decimals (exact decimal rounding, the same text on both engines)."""
    return exp.maybe_parse(f"CAST(ROUND(CAST({value.sql('duckdb')} AS DECIMAL(18, 6)), 3) AS VARCHAR)",
                           dialect="duckdb")


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
