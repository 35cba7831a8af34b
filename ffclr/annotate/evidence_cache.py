"""The queue's view of each drawing kept on disk, so that rebuilding the queue runs the detector
only on drawings it has not seen: one small `.npz` per (detector file, drawing bytes) under the
workspace's `cache/queue-evidence/`, and the mean embedding of each annotated drawing's boxes
(one `.npy` per detector file, drawing and set of boxes). The detector file is known by its
path, size and modification time, the drawing by its content hash; the kNN check is not kept (it
changes with every label). A missing, damaged or foreign file is recomputed; the files of a
detector file that is gone or was rewritten are pruned (`evidence_alive`)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ffclr.data.npz_files import READ_ERRORS
from ffclr.derived_files import Owner, write_aside

EVIDENCE_FOLDER = "queue-evidence"


def _detector_source(detector_path: str | os.PathLike) -> dict:
    detector_file = Path(detector_path).resolve()
    stat = detector_file.stat()
    return {"detector": str(detector_file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def evidence_alive(source: dict) -> bool:
    """Whether the detector file a group was made with is still there, unchanged."""
    try:
        return _detector_source(source["detector"]) == source
    except (KeyError, TypeError, OSError):
        return False


class EvidenceCache:
    def __init__(self, folder: Path, detector_path: str | os.PathLike):
        self.owner = Owner(folder, _detector_source(detector_path))

    def path(self, drawing_sha: str) -> Path:
        return self.owner.path(drawing_sha[:40], ".npz")

    def point_path(self, drawing_sha: str, boxes: np.ndarray) -> Path:
        digest = hashlib.sha256(np.ascontiguousarray(boxes, np.float64).tobytes()).hexdigest()
        return self.owner.path(f"{drawing_sha[:40]}-labelled-{digest[:16]}", ".npy")

    def load_point(self, drawing_sha: str, boxes: np.ndarray) -> np.ndarray | None:
        """The kept mean embedding of the drawing's labelled `boxes`, None when there is none."""
        try:
            point = np.load(self.point_path(drawing_sha, boxes), allow_pickle=False)
        except READ_ERRORS:
            return None
        return point if point.ndim == 1 and point.dtype == np.float32 else None

    def save_point(self, drawing_sha: str, boxes: np.ndarray, point: np.ndarray) -> None:
        """Kept for these boxes, replacing the point of the drawing's earlier boxes."""
        path = self.point_path(drawing_sha, boxes)
        if self._write(path, lambda tmp: np.save(tmp, np.asarray(point, np.float32))):
            self.owner.supersede([path], prefix=f"{drawing_sha[:40]}-labelled-")

    def load(self, drawing_sha: str, detector):
        """The kept DrawingEvidence (without kNN classes), None when there is none."""
        from ffclr.annotate.queue import DrawingEvidence
        from ffclr.detection.detector import Detection

        try:
            with np.load(self.path(drawing_sha), allow_pickle=False) as data:
                boxes, classes, scores = data["bbox"], data["class_index"], data["score"]
                margins, embedding = data["class_margins"], data["embedding"]
            found = [Detection(bbox=tuple(float(v) for v in box), class_index=int(k),
                               class_name=detector.class_names[k],
                               category_id=int(detector.category_ids[k]), score=float(score))
                     for box, k, score in zip(boxes.reshape(-1, 4), classes, scores)]
        except (*READ_ERRORS, IndexError, TypeError):
            return None
        if len(margins) != len(found):
            return None
        return DrawingEvidence(found, margins, embedding)

    def save(self, drawing_sha: str, evidence) -> None:
        found = evidence.detections
        self._write(self.path(drawing_sha), lambda tmp: np.savez(
            tmp, bbox=np.array([d.bbox for d in found], np.float64).reshape(-1, 4),
            class_index=np.array([d.class_index for d in found], np.int64),
            score=np.array([d.score for d in found], np.float64),
            class_margins=np.asarray(evidence.class_margins, np.float64),
            embedding=np.asarray(evidence.embedding, np.float32)))

    def _write(self, path: Path, write) -> bool:
        """Written aside then renamed; a cache that cannot be written is skipped (False)."""
        try:
            self.owner.claim()
            write_aside(path, write)
            return True
        except OSError:
            return False
