"""The SQLite store of ffclr: datasets, crops, runs, metrics and label edits (via sqlite-utils)."""
from store.db import RUN_STATUSES, SCHEMA_VERSION, Store
from store.errors import StoreError

__all__ = ["Store", "StoreError", "SCHEMA_VERSION", "RUN_STATUSES"]
