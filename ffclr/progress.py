"""A `progress(done, total, message)` callback drawing a tqdm bar on stderr, for the CLI."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def tqdm_progress(unit: str = "step"):
    """One bar per stage: a new bar starts when the total changes or the count goes back."""
    from tqdm import tqdm

    state: dict[str, object] = {}

    def progress(done: int, total: int, message: str) -> None:
        bar = state.get("bar")
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = state["bar"] = tqdm(total=total, unit=unit, dynamic_ncols=True, leave=False)
        bar.set_description_str(message[:60], refresh=False)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if state.get("bar") is not None:
            state["bar"].close()
