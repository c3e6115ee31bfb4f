"""One explicit ISO-8601 parser for timestamps that arrive as text (stream payloads, JSON-lines logs).

Each value is parsed on its own (no format guessed from the first value), vectorised in polars:

    YYYY-MM-DD(T| )HH:MM[:SS[.fraction]][Z | +HH:MM | +HHMM | +HH]

A value with an offset (or Z) is that instant. A value without one is read as the site's local time (the
site's IANA timezone), never silently as UTC; a local time that a DST change skips or repeats is refused
(add an offset). Values outside [MIN_TS, MAX_TS) are refused too: nothing before 1970 or after 2199 is a
camera frame, and such values overflow date arithmetic downstream. Fractions beyond microseconds are
truncated. Each refused value gets a reason that names it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from ingestion.schema import UTC_TS

MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2200, 1, 1, tzinfo=UTC)
ISO_8601_FORMS = "YYYY-MM-DDTHH:MM[:SS[.ffffff]] with Z or an offset like +07:00"
_PATTERN = (
    r"^(?<date>\d{4}-\d{2}-\d{2})[T ](?<hm>\d{2}:\d{2})(?::(?<sec>\d{2})(?:[.,](?<frac>\d{1,9}))?)?"
    r"(?<offset>[Zz]|(?<sign>[+-])(?<oh>\d{2})(?::?(?<om>\d{2}))?)?$"
)
_SHOWN_CHARS = 64  # of a refused value, in its reason


def parse_iso_datetimes(values: pl.Series, timezone: str) -> pl.DataFrame:
    """`values` (strings) -> columns `ts` (UTC datetime[us], null where refused) and `problem` (why a
    value was refused, null where it parsed). A null value is refused as missing."""
    c = pl.col
    g = (
        pl.DataFrame({"v": values.cast(pl.String)})
        .with_columns(c("v").str.extract_groups(_PATTERN).alias("g"))
        .unnest("g")
    )
    frac = c("frac").fill_null("").str.slice(0, 6).str.pad_end(6, "0")
    naive = pl.concat_str(
        [c("date"), pl.lit("T"), c("hm"), pl.lit(":"), c("sec").fill_null("00"), pl.lit("."), frac]
    ).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
    oh = c("oh").cast(pl.Int32, strict=False)
    om = c("om").fill_null("0").cast(pl.Int32, strict=False)
    offset_minutes = (
        pl.when(c("offset").str.to_uppercase() == "Z")
        .then(0)
        .otherwise((oh * 60 + om) * pl.when(c("sign") == "-").then(-1).otherwise(1))
    )
    shown = c("v").str.slice(0, _SHOWN_CHARS)
    out = g.with_columns(
        naive=naive,
        has_offset=c("offset").is_not_null(),
        matched=c("date").is_not_null(),
        oh=oh,
        om=om,
        offset_minutes=offset_minutes,
    ).with_columns(
        ts=pl.when(c("has_offset"))
        .then((c("naive") - pl.duration(minutes=c("offset_minutes"))).dt.replace_time_zone("UTC"))
        .otherwise(
            c("naive")
            .dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
        .cast(UTC_TS),
    )
    problem = (
        pl.when(c("v").is_null())
        .then(pl.lit("is missing"))
        .when(~c("matched"))
        .then(pl.format(f"'{{}}' is not an ISO-8601 date-time ({ISO_8601_FORMS})", shown))
        .when(c("has_offset") & ((c("oh") > 23) | (c("om") > 59)))
        .then(pl.format("'{}' has an invalid UTC offset", shown))
        .when(c("naive").is_null())
        .then(pl.format("'{}' is not a valid date and time", shown))
        .when(c("ts").is_null())
        .then(
            pl.format(
                f"'{{}}' does not exist or is ambiguous in the site timezone {timezone} (a clock "
                "change); add a UTC offset",
                shown,
            )
        )
        .when((c("ts") < MIN_TS) | (c("ts") >= MAX_TS))
        .then(pl.format(f"'{{}}' is outside {MIN_TS:%Y-%m-%d}..{MAX_TS.year - 1}-12-31", shown))
    )
    out = out.with_columns(problem=problem)
    return out.select(ts=pl.when(c("problem").is_null()).then(c("ts")), problem=c("problem"))
