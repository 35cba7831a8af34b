"""User-facing errors: the CLI and UI print their message as one line, no traceback."""


class FfclrError(Exception):
    """A problem with the user's input or environment, explained in the message."""
