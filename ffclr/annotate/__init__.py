"""Labelling new drawings: drawings kept in the workspace, pre-annotation by the detector,
append-only box edits, the queue of what to label next, and refits from the new labels.

Public API (functions take a Workspace and return data; bad input raises FfclrError):
`add_drawings`, `drawings`, `set_split`, `remove_drawing`, `preannotate`, `boxes`, `add_box`,
`move_box`, `set_class`, `delete_box`, `accept_above`, `undo`, `finish_drawing`,
`labelled_drawings`, `labelled_split`.
"""
from ffclr.annotate.boxes import Box
from ffclr.annotate.drawings import (AddedDrawings, add_drawings, drawing_path, drawings,
                                     remove_drawing, set_split)
from ffclr.annotate.editing import (accept_above, add_box, boxes, delete_box, move_box,
                                    preannotate, set_class, undo)
from ffclr.annotate.finish import finish_drawing, labelled_drawings, labelled_split

__all__ = ["AddedDrawings", "Box", "accept_above", "add_box", "add_drawings", "boxes",
           "delete_box", "drawing_path", "drawings", "finish_drawing", "labelled_drawings",
           "labelled_split", "move_box", "preannotate", "remove_drawing", "set_class", "set_split",
           "undo"]
