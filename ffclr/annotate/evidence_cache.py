"""The queue's view of each drawing kept on disk, so that rebuilding the queue runs the detector
only on drawings it has not seen: one small `.npz` per (detector file, drawing bytes) under the
workspace's `cache/queue-evidence/`. The detector file is known by its path, size and
modification time, the drawing by its content hash; the kNN check is not kept (it changes with
every label). A missing, damaged or foreign file is recomputed."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ffclr.data.npz_files import READ_ERRORS

EVIDENCE_FOLDER = "queue-evidence"


class EvidenceCache:
    def __init__(self, folder: Path, detector_path: str | os.PathLike):
        detector_file = Path(detector_path).resolve()
        stat = detector_file.stat()
        self.folder = folder
        self.detector = hashlib.sha256(
            f"{detector_file}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]

    def path(self, drawing_sha: str) -> Path:
        return self.folder / f"{self.detector}-{drawing_sha[:40]}.npz"

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
        """Written aside then renamed; a cache that cannot be written is skipped."""
        path = self.path(drawing_sha)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        found = evidence.detections
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, bbox=np.array([d.bbox for d in found], np.float64).reshape(-1, 4),
                     class_index=np.array([d.class_index for d in found], np.int64),
                     score=np.array([d.score for d in found], np.float64),
                     class_margins=np.asarray(evidence.class_margins, np.float64),
                     embedding=np.asarray(evidence.embedding, np.float32))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
