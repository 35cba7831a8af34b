"""The SQLite store of ffclr: datasets, crops, runs, metrics and label edits (via sqlite-utils)."""
from store.db import RUN_STATUSES, SCHEMA_VERSION, Store

__all__ = ["Store", "SCHEMA_VERSION", "RUN_STATUSES"]
