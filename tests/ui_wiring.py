"""Find a built app's components and event handlers by `elem_id`, to call a handler the way
Gradio does and read each output by the component it goes to."""
from __future__ import annotations

from typing import Any


def component(demo, elem_id: str):
    """The component with this `elem_id`."""
    found = [block for block in demo.blocks.values()
             if getattr(block, "elem_id", None) == elem_id]
    assert len(found) == 1, f"{len(found)} components with elem_id {elem_id!r}"
    return found[0]


def handler(demo, elem_id: str, event: str):
    """The one event handler (a Gradio BlockFunction) listening to `event` of `elem_id`."""
    target = component(demo, elem_id)._id
    found = [fn for fn in demo.fns.values() if (target, event) in fn.targets]
    assert len(found) == 1, f"{len(found)} handlers of {event} on {elem_id!r}"
    return found[0]


def call(demo, elem_id: str, event: str, *args) -> dict[Any, Any]:
    """Call the handler of `event` on `elem_id` with `args`; its outputs by the elem_id of the
    component each goes to (the component itself where it has none)."""
    fn = handler(demo, elem_id, event)
    result = fn.fn(*args)
    result = result if isinstance(result, (tuple, list)) and len(fn.outputs) > 1 else (result,)
    assert len(result) == len(fn.outputs)
    return {(out.elem_id or out): value for out, value in zip(fn.outputs, result)}


def skipped(value) -> bool:
    """Whether a handler left this output as it was (`gr.skip()`)."""
    return isinstance(value, dict) and value == {"__type__": "update"}
