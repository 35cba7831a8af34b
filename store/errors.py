"""Errors of the store."""


class StoreError(Exception):
    """The store file cannot be used (unreadable, or of a newer schema), explained in the
    message; `ffclr.workspace.Workspace.open_store` turns it into a user-facing `FfclrError`."""
