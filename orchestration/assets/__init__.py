"""Dagster assets: each body is a few lines calling `ingestion`, SQLMesh or `quality`."""
