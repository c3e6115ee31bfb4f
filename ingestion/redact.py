"""Credentials out of messages and logs: the one helper every error, log line and printout that shows a
connection string goes through.

    redact_url("postgresql://app:s3cret@db:5432/sightline?sslmode=require")
    -> "postgresql://app:***@db:5432/sightline?sslmode=require"
    redact_url("host=db user=app password=s3cret")  ->  "host=db user=app password=***"

URLs are split with urllib (user:password@ and secret query parameters such as ?password=); libpq
conninfo strings ("key=value ...") are parsed with psycopg's own parser. Anything that cannot be parsed is
hidden whole rather than guessed at.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MASK = "***"
# Query-string and conninfo keys whose values are secrets (compared lower-case).
SECRET_KEYS = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "pwd",
        "sslpassword",
        "secret",
        "token",
        "access_token",
        "api_key",
        "apikey",
    }
)


def redact_url(url: str) -> str:
    """`url` with every password or secret replaced by `***`; safe to print or log."""
    if not isinstance(url, str):
        return MASK
    if "://" in url:
        return _redact_url(url)
    if "=" in url:
        return _redact_conninfo(url)
    if "@" in url:  # user:password@host without a scheme
        return f"{MASK}@{url.rpartition('@')[2]}"
    return url


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"<{MASK} unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{user}@{host}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url
    # Rebuilt by hand: urlunsplit would drop the `//` of an empty host (duckdb:///path).
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def _redact_pair(pair: str) -> str:
    key, has_value, _ = pair.partition("=")
    if has_value and unquote(key).strip().lower() in SECRET_KEYS:
        return f"{key}={MASK}"
    return pair


def _redact_conninfo(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(conninfo)
    except Exception:  # noqa: BLE001 - any parse failure: hide it all rather than print a secret
        return f"<{MASK} unparseable connection string>"
    secret = {k for k in params if k.lower() in SECRET_KEYS}
    if not secret:
        return conninfo
    return make_conninfo("", **{k: (MASK if k in secret else v) for k, v in params.items()})
