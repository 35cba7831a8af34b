"""The SQLite store of ffclr: datasets, crops, runs, metrics, label edits, drawings with their box
edits, and crop tags (via sqlite-utils)."""
from store.db import RUN_STATUSES, SCHEMA_VERSION, Store
from store.errors import StoreError

__all__ = ["Store", "StoreError", "SCHEMA_VERSION", "RUN_STATUSES"]
