"""What to label next: the drawings not yet annotated, ordered by how unsure the detector is of
them, spread out in embedding space, each with the reason in one sentence.

A box is uncertain when its score is near the detector's threshold (is it a symbol at all?),
when its two most likely classes are close (which symbol?), or, given a checkpoint, when the
kNN vote of the dataset's labelled crops names another class than the detector's probe. A
drawing's uncertainty is the sum over its boxes. Diversity: drawings are taken greedily, each
one's uncertainty discounted by how close its mean box embedding is to a drawing already
annotated or already ahead of it in the queue.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Hashable

import numpy as np

from ffclr.detection.boxes import xywh_to_xyxy
from ffclr.detection.crops import crop_pixels
from ffclr.detection.detector import Detection, Detector, detect_scored, encoder_features
from ffclr.annotate.evidence_cache import EVIDENCE_FOLDER, EvidenceCache
from ffclr.eval.neighbours import l2_normalise

Progress = Callable[[int, int, str], None]
ORDERS = ("uncertainty", "random")
NEAR_THRESHOLD = 0.15
"""A box whose score is within this of the threshold is 'near the threshold'."""
CLASS_MARGIN = 0.25
"""A shown box whose two most likely classes differ by less than this is 'between two classes'."""
DIVERSITY = 0.5
"""A drawing identical in embedding to one already chosen keeps 1 − DIVERSITY of its value."""


@dataclass
class QueueItem:
    drawing_id: Hashable
    score: float
    """The value it was chosen with (uncertainty after the diversity discount); 0 in random order."""
    reason: str


@dataclass
class DrawingEvidence:
    """What the detector makes of one drawing: enough to rank it and to pre-annotate it."""

    detections: list[Detection]
    """Every scored box (down to the detector's min_score), best first."""
    class_margins: np.ndarray
    """Per detection: its class's probability minus the next symbol class's."""
    embedding: np.ndarray
    """Mean L2-normalised encoder feature of the shown boxes (of all boxes if none is shown)."""
    knn_classes: np.ndarray | None = None
    """Per detection, the kNN vote's class for the shown boxes (a detector class index, −1 when
    the kNN's class is unknown to the detector), −1 for the others; None without a checkpoint."""


class KnnCheck:
    """A second opinion on a box's class: weighted kNN over labelled crops embedded by a
    checkpoint's encoder. `class_names` are the labelled crops' classes, mapped by name onto the
    detector's."""

    def __init__(self, encoder, features: np.ndarray, labels: np.ndarray, class_names: list[str]):
        from ffclr.eval.knn import KnnClassifier

        self.encoder = encoder
        self.class_names = list(class_names)
        self.knn = KnnClassifier.fit(features, labels, len(class_names))

    def classes(self, image, boxes: np.ndarray, detector_classes: list[str]) -> np.ndarray:
        if len(boxes) == 0:
            return np.zeros(0, np.int64)
        pixels = crop_pixels(image, boxes, self.encoder.image_size)
        votes = self.knn.predict(encoder_features(self.encoder, pixels))
        index = {name: i for i, name in enumerate(detector_classes)}
        return np.array([index.get(self.class_names[v], -1) for v in votes], np.int64)


def examine(detector: Detector, image, knn: KnnCheck | None = None) -> DrawingEvidence:
    """What the detector makes of a drawing (PIL image), as detection makes it, keeping what the
    queue needs."""
    scored = detect_scored(detector, image)
    found = scored.detections
    if not found:
        return DrawingEvidence([], np.zeros(0), np.zeros(detector.encoder.feature_dim, np.float32),
                               None if knn is None else np.zeros(0, np.int64))
    symbol = np.sort(scored.proba[:, :detector.background_index], axis=1)
    margins = symbol[:, -1] - symbol[:, -2] if symbol.shape[1] > 1 else symbol[:, -1]
    encoded = l2_normalise(scored.features[:, :detector.encoder.feature_dim])
    shown = [r for r, d in enumerate(found) if d.score >= detector.score_threshold]
    embedding = encoded[shown].mean(axis=0) if shown else encoded.mean(axis=0)
    evidence = DrawingEvidence(found, margins, embedding.astype(np.float32))
    return evidence if knn is None else with_knn(evidence, detector, image, knn)


def with_knn(evidence: DrawingEvidence, detector: Detector, image, knn: KnnCheck
             ) -> DrawingEvidence:
    """The evidence with the kNN vote's class of each shown box (`knn_classes`)."""
    found = evidence.detections
    rows_shown = [i for i, d in enumerate(found) if d.score >= detector.score_threshold]
    knn_classes = np.full(len(found), -1, np.int64)
    knn_classes[rows_shown] = knn.classes(
        image, xywh_to_xyxy([found[i].bbox for i in rows_shown]), detector.class_names)
    return replace(evidence, knn_classes=knn_classes)


def labelled_embedding(detector: Detector, image, boxes: np.ndarray) -> np.ndarray | None:
    """Mean L2-normalised encoder feature of a labelled drawing's boxes (xyxy); None if none."""
    if len(boxes) == 0:
        return None
    pixels = crop_pixels(image, boxes, detector.encoder.image_size, detector.config.crop_padding)
    return l2_normalise(encoder_features(detector.encoder, pixels)).mean(axis=0)


@dataclass
class Uncertainty:
    near: int
    """Boxes whose score is within NEAR_THRESHOLD of the threshold."""
    between: int
    """Shown boxes torn between two classes."""
    disagree: int
    """Shown boxes the kNN vote gives another class."""
    shown: int
    value: float


def uncertainty(evidence: DrawingEvidence, threshold: float) -> Uncertainty:
    """Per box the largest of: closeness to the threshold (1 at it, 0 from NEAR_THRESHOLD × 2
    away), class doubt (1 − margin / (2 × CLASS_MARGIN), shown boxes) and kNN disagreement (1);
    summed over the drawing's boxes."""
    scores = np.array([d.score for d in evidence.detections], np.float64)
    classes = np.array([d.class_index for d in evidence.detections], np.int64)
    shown = scores >= threshold
    closeness = np.clip(1 - np.abs(scores - threshold) / (2 * NEAR_THRESHOLD), 0, 1)
    doubt = np.where(shown, np.clip(1 - evidence.class_margins / (2 * CLASS_MARGIN), 0, 1), 0)
    disagree = np.zeros(len(scores), bool)
    if evidence.knn_classes is not None:
        disagree = shown & (evidence.knn_classes >= 0) & (evidence.knn_classes != classes)
    per_box = np.maximum.reduce([closeness, doubt, disagree.astype(float)]) if len(scores) else \
        np.zeros(0)
    return Uncertainty(near=int(np.sum(np.abs(scores - threshold) <= NEAR_THRESHOLD)),
                       between=int(np.sum(shown & (evidence.class_margins < CLASS_MARGIN))),
                       disagree=int(disagree.sum()), shown=int(shown.sum()),
                       value=float(per_box.sum()))


def rank(evidence: dict[Hashable, DrawingEvidence], threshold: float,
         labelled: list[np.ndarray] = ()) -> list[QueueItem]:
    """Greedy: take the drawing of highest uncertainty × (1 − DIVERSITY × redundancy), where
    redundancy = exp(−d / d̄), d its embedding distance to the nearest drawing labelled or taken
    before it and d̄ the median distance between the drawings to rank."""
    keys = list(evidence)
    if not keys:
        return []
    found = {k: uncertainty(evidence[k], threshold) for k in keys}
    points = np.stack([evidence[k].embedding for k in keys]).astype(np.float64)
    scale = _median_distance(points)
    nearest = np.full(len(keys), np.inf)
    for point in labelled:
        nearest = np.minimum(nearest, np.linalg.norm(points - point, axis=1))
    left, items = list(range(len(keys))), []
    while left:
        redundancy = np.exp(-nearest[left] / scale)
        values = np.array([found[keys[i]].value for i in left]) * (1 - DIVERSITY * redundancy)
        pick = int(np.argmax(values))
        i = left.pop(pick)
        alone = not np.isfinite(nearest[i])
        items.append(QueueItem(keys[i], float(values[pick]),
                               reason(found[keys[i]], threshold,
                                      None if alone else float(redundancy[pick]))))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    return items


def _median_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 1.0
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)[np.triu_indices(len(points), 1)]
    return float(max(np.median(gaps), 1e-6))


def reason(found: Uncertainty, threshold: float, redundancy: float | None) -> str:
    """One sentence: why this drawing is where it is in the queue (`redundancy` None: no
    drawing was labelled or queued before it)."""
    parts = []
    if found.near:
        parts.append(f"{_count(found.near, 'box', 'boxes')} near the detection threshold "
                     f"({threshold:.2f})")
    if found.between:
        parts.append(f"{_count(found.between, 'box', 'boxes')} between two classes")
    if found.disagree:
        parts.append(f"probe and kNN disagree on {_count(found.disagree, 'box', 'boxes')}")
    if not parts:
        parts.append(f"the detector is sure of its {_count(found.shown, 'box', 'boxes')}")
    if redundancy is None:
        pass
    elif redundancy < 0.25:
        parts.append("unlike the drawings labelled or queued before it")
    elif redundancy > 0.75:
        parts.append("much like a drawing labelled or queued before it")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def random_order(keys: list, seed: int = 0) -> list[QueueItem]:
    """A seeded shuffle of `keys` (the same seed gives the same order)."""
    order = np.random.default_rng(seed).permutation(len(keys))
    return [QueueItem(keys[i], 0.0, f"Random order (seed {seed}).") for i in order]


def label_queue(workspace, dataset: str, detector_path: str | os.PathLike,
                checkpoint: str | os.PathLike | None = None, order: str = "uncertainty",
                seed: int = 0, progress: Progress | None = None,
                evidence: dict | None = None) -> list[QueueItem]:
    """The dataset's drawings not yet annotated, in the order to label them.

    `evidence` (drawing id → DrawingEvidence) skips detection for the drawings it holds.
    """
    from ffclr.annotate import drawings as list_drawings
    from ffclr.errors import FfclrError

    if order not in ORDERS:
        raise FfclrError(f"order {order!r}: choose one of {', '.join(ORDERS)}")
    rows = sorted(list_drawings(workspace, dataset), key=lambda d: d["id"])
    todo = [d for d in rows if d["status"] != "annotated"]
    if order == "random" or not todo:
        return random_order([d["id"] for d in todo], seed)
    from ffclr.detection import load_detector

    detector = load_detector(detector_path)
    knn = knn_check(workspace, dataset, checkpoint) if checkpoint else None
    evidence = dict(evidence or {})
    kept = EvidenceCache(workspace.cache / EVIDENCE_FOLDER, detector_path)
    for done, row in enumerate(todo):
        if row["id"] not in evidence:
            found = _evidence(workspace, row, detector, knn, kept)
            if found is not None:
                evidence[row["id"]] = found
        if progress:
            progress(done + 1, len(todo), f"examined {row['file_name']}")
    labelled = _labelled_embeddings(workspace, detector,
                                    [d for d in rows if d["status"] == "annotated"], kept)
    return rank({d["id"]: evidence[d["id"]] for d in todo if d["id"] in evidence},
                detector.score_threshold, labelled)


def _evidence(workspace, row: dict, detector: Detector, knn: KnnCheck | None,
              kept: EvidenceCache) -> DrawingEvidence | None:
    """The drawing's evidence, the detector's part from the cache when this detector has seen
    these bytes before; None when the drawing cannot be read."""
    found, image = kept.load(row["sha256"], detector), None
    if found is None:
        image = _read(workspace, row)
        if image is None:
            return None
        found = examine(detector, image, None)
        kept.save(row["sha256"], found)
    if knn is None:
        return found
    if image is None:
        image = _read(workspace, row)
    return None if image is None else with_knn(found, detector, image, knn)


def _read(workspace, row: dict):
    """The drawing's RGB image, None when it cannot be read (it is left out of the queue)."""
    from ffclr.annotate import drawing_path
    from ffclr.detection.images import read_drawing
    from ffclr.errors import FfclrError

    try:
        return read_drawing(drawing_path(workspace, row))[0]
    except FfclrError:
        return None


def _labelled_embeddings(workspace, detector: Detector, annotated: list[dict],
                         kept: EvidenceCache) -> list[np.ndarray]:
    """Where each annotated drawing's boxes lie in embedding space (kept per set of boxes)."""
    from ffclr.annotate import boxes as current_boxes

    found = []
    for row in annotated:
        xyxy = xywh_to_xyxy([b.bbox for b in current_boxes(workspace, row["id"])])
        if len(xyxy) == 0:
            continue
        point = kept.load_point(row["sha256"], xyxy)
        if point is None:
            image = _read(workspace, row)
            point = None if image is None else labelled_embedding(detector, image, xyxy)
            if point is None:
                continue
            kept.save_point(row["sha256"], xyxy, point)
        found.append(point)
    return found


def knn_check(workspace, dataset: str, checkpoint: str | os.PathLike) -> KnnCheck:
    """kNN over every labelled crop of the dataset, embedded by `checkpoint` (cached)."""
    from ffclr.data.cropset import load_dataset_split
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.model.checkpoint import load_encoder

    crops = load_dataset_split(dataset, None, workspace)
    encoder = load_encoder(checkpoint)
    features = embed_crop_set(crops, checkpoint, workspace, encoder=encoder).features
    return KnnCheck(encoder, features, crops.labels, crops.class_names)
