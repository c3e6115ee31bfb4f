"""SQLMesh's DuckDB connection, opened like every other DuckDB connection of Sightline: waiting while
another process (`sightline stream` between micro-batches, a Dagster run) holds the file's lock, instead of
failing at once (see ingestion.warehouse.duckdb.open_duckdb).

Imported only where SQLMesh is (ingestion.transform builds the config).
"""

from __future__ import annotations

import typing as t

from sqlmesh.core.config import DuckDBConnectionConfig


def _connect(database: str = ":memory:", **options: t.Any) -> t.Any:
    from ingestion.warehouse.duckdb import open_duckdb

    return open_duckdb(database, **options)


class SightlineDuckDBConnectionConfig(DuckDBConnectionConfig):
    """The `duckdb` gateway's connection: DuckDBConnectionConfig whose connect waits on the file lock."""

    @property
    def _connection_factory(self) -> t.Callable:
        return _connect
