"""Run one SQL text on either backend: quality's queries are written with `{p}` placeholders (the landing
layer's and orchestration's convention) and turned into the backend's own style (`Warehouse.placeholder`:
`?` for DuckDB, `%s` for psycopg), so every check has a single SQL text for both engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ingestion.warehouse.base import Warehouse


def query(wh: Warehouse, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
    return wh.query(sql.replace("{p}", getattr(wh, "placeholder", "?")), list(params))
