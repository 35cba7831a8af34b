"""`Detector`: everything needed to find symbols in a drawing, and `detect_image`.

Pipeline: stroke proposals (ink extents) → agnostic margins give annotator-style boxes →
raw-pixel filter keeps the likely symbols → encoder features → probe with a background class →
class-specific margins around the ink extent → size prior (score × how likely the box's size is
for its class; the box pulled towards that size) → box refinement (each side moved as the ink
around it says, `refine.py`) → class-wise NMS; a drawing at another scale than the training
drawings gets a second pass at their scale (`rescale.py`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from ffclr.detection.boxes import MarginModel, batched_nms, clip_boxes
from ffclr.detection.crops import CROP_PADDING, crop_pixels
from ffclr.detection.images import MAX_PIXELS, read_drawing
from ffclr.detection.proposals import ProposalConfig, dedupe_indices, stroke_proposals
from ffclr.detection.refine import BoxRefiner, RefinerConfig, drawing_ink
from ffclr.detection.rescale import merged_passes, resampled, rescale_factor, scaled_back
from ffclr.detection.scoring import LinearScorer, pixel_features
from ffclr.detection.sizes import SizePrior

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DetectorConfig:
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    proposal_dedupe_iou: float = 0.8
    """Proposals whose boxes overlap this much after the margins are one proposal."""
    max_candidates: int = 200
    candidates_per_megapixel: int = 350
    """At most max(max_candidates, this × megapixels) proposals that pass the pixel filter reach
    the encoder (200 for the 0.56 MP median training drawing; a larger drawing gets as many per
    area). A bound on time for drawings full of stroke groups: the densest valid schematic (59
    symbols in 0.53 MP) passes 249, and a bound of 400 finds no more of its symbols."""
    min_candidates: int = 40
    """The pixel filter's best this many always reach the encoder, whatever their score."""
    nms_iou: float = 0.5
    min_score: float = 0.02
    """Detections below this score are dropped whatever the threshold (they only feed mAP)."""
    crop_padding: float = CROP_PADDING
    probe_c: float = 1.0
    background_per_image: int = 40
    positives_per_box: int = 2
    filter_recall: float = 0.99
    accept_precision: float = 0.95
    """`Detector.accept_threshold` is the lowest score whose detections and above reach this
    precision on the training drawings."""
    pixels_in_probe: bool = True
    """The probe also sees the pixel filter's 16 × 16 pixels beside the encoder's features."""
    size_prior: bool = True
    """Scores are multiplied by how likely the box's size is for its class, and boxes pulled
    towards that size (`sizes.py`)."""
    scale_min_score: float = 0.9
    """The size prior reads a drawing's scale from its detections scoring at least this."""
    refinement: RefinerConfig | None = field(default_factory=RefinerConfig)
    """How the box refiner is fitted and reads the ink (None: no refinement)."""
    rescale_beyond: float | None = 1.16
    """A drawing whose confident detections read more than this many times larger or smaller
    than their classes' training boxes is detected again, resampled to the training drawings'
    scale, and that pass adds the symbols the first did not show (`rescale.py`; None: one
    pass)."""


@dataclass
class Detection:
    bbox: tuple[float, float, float, float]
    """COCO (x, y, width, height) in pixels."""
    class_index: int
    class_name: str
    category_id: int
    score: float

    def as_dict(self) -> dict:
        return {"bbox": list(self.bbox), "class_index": self.class_index,
                "class_name": self.class_name, "category_id": self.category_id,
                "score": self.score}


@dataclass
class Detector:
    encoder: object
    """`ffclr.model.checkpoint.Encoder`."""
    probe: object
    """`ffclr.eval.probe.Probe` over the classes + background (last)."""
    class_names: list[str]
    category_ids: list[int]
    """The training export's COCO category id of each class."""
    margins: MarginModel
    pixel_filter: LinearScorer
    score_threshold: float
    """Detections at or above it are shown by default (chosen on the training split)."""
    config: DetectorConfig = field(default_factory=DetectorConfig)
    info: dict = field(default_factory=dict)
    accept_threshold: float | None = None
    """Detections at or above it reached `config.accept_precision` on the training drawings:
    the ones a labeller may accept in one action (None: no score reached it, or a detector saved
    before this existed)."""
    size_prior: SizePrior | None = None
    """Each class's box size on the training drawings (None: scores are the probe's alone, as
    for a detector saved before it existed)."""
    refiner: BoxRefiner | None = None
    """Moves each box's sides towards the annotators' box (None: boxes stay as the margins and
    the size prior make them, as for a detector saved before it existed)."""

    @property
    def background_index(self) -> int:
        return len(self.class_names)


@dataclass
class Candidates:
    """The proposals of one drawing that reach the encoder."""

    cores: np.ndarray
    boxes: np.ndarray
    filter_logits: np.ndarray


def propose(image: Image.Image, margins: MarginModel, config: DetectorConfig,
            cores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ink extents, agnostic boxes) of a drawing's proposals, near-duplicates merged."""
    if cores is None:
        cores = stroke_proposals(np.asarray(image), config.proposals)
    boxes = clip_boxes(margins.apply(cores), *image.size)
    keep = dedupe_indices(boxes, config.proposal_dedupe_iou)
    return cores[keep], boxes[keep]


def select_candidates(detector: Detector, image: Image.Image, cores: np.ndarray | None = None
                      ) -> Candidates:
    cores, boxes = propose(image, detector.margins, detector.config, cores)
    logits = detector.pixel_filter.logit(pixel_features(image, boxes)) if len(boxes) else np.zeros(0)
    order = np.argsort(-logits, kind="stable")
    passed = int(np.sum(logits[order] >= detector.pixel_filter.threshold))
    config = detector.config
    cap = max(config.max_candidates,
              int(config.candidates_per_megapixel * image.size[0] * image.size[1] / 1e6))
    keep = order[:min(max(passed, config.min_candidates), cap)]
    return Candidates(cores[keep], boxes[keep], logits[keep])


def encoder_features(encoder, pixels: np.ndarray) -> np.ndarray:
    """(N, feature_dim) float32 features of uint8 crops, in `inference_dtype`: fitting and
    detection both use it, so the probe sees the same features."""
    from ffclr.model.embed import embed_uint8, inference_dtype

    if len(pixels) == 0:
        return np.zeros((0, encoder.feature_dim), np.float32)
    device = next(encoder.model.parameters()).device
    return embed_uint8(encoder.model, pixels, mean=encoder.mean, std=encoder.std, device=device,
                       dtype=inference_dtype(device), batch_size=128, frozen=True).numpy()


def probe_features(detector: Detector, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
    """What the probe reads for each box: encoder features (+ the crop's 16 × 16 pixels)."""
    pixels = crop_pixels(image, boxes, detector.encoder.image_size, detector.config.crop_padding)
    features = encoder_features(detector.encoder, pixels)
    if detector.config.pixels_in_probe:
        features = np.concatenate([features, pixel_features(image, boxes)], axis=1)
    return features


def _classified_boxes(detector: Detector, cores: np.ndarray, proba: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes with their class's margins, best symbol class, its probability) per candidate."""
    symbol = proba[:, : detector.background_index]
    classes = symbol.argmax(axis=1)
    return (detector.margins.apply(cores, classes), classes,
            symbol[np.arange(len(classes)), classes])


def drawing_scale(detector: Detector, cores: np.ndarray, proba: np.ndarray) -> float:
    """The drawing's log scale against the training drawings, as the size prior reads it from
    the scored candidates (0 without a size prior or candidates)."""
    if detector.size_prior is None or len(cores) == 0:
        return 0.0
    boxes, classes, scores = _classified_boxes(detector, cores, proba)
    prior = detector.size_prior
    return prior.drawing_scale(prior.deviation(boxes, classes), scores,
                               detector.config.scale_min_score)


def kept_candidates(detector: Detector, image: Image.Image, cores: np.ndarray,
                    proba: np.ndarray, min_score: float) -> tuple[np.ndarray, list[Detection]]:
    """(the candidate row of each detection, the detections best first) of one drawing."""
    if len(cores) == 0:
        return np.zeros(0, np.int64), []
    boxes, classes, scores = _classified_boxes(detector, cores, proba)
    if detector.size_prior is not None:
        boxes, scores = detector.size_prior.rescore(boxes, classes, scores,
                                                    detector.config.scale_min_score)
    live = np.flatnonzero(scores >= min_score)
    if detector.refiner is not None and len(live):
        ink = drawing_ink(image, detector.config.proposals.ink_threshold)
        boxes[live] = detector.refiner.apply(ink, boxes[live], classes[live])
    boxes = clip_boxes(boxes, *image.size)
    ok = (scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    rows = np.flatnonzero(ok)
    rows = rows[batched_nms(boxes[rows], scores[rows], classes[rows], detector.config.nms_iou)]
    return rows, [Detection(bbox=tuple(round(float(v), 2)
                                       for v in (b[0], b[1], b[2] - b[0], b[3] - b[1])),
                            class_index=int(k), class_name=detector.class_names[k],
                            category_id=int(detector.category_ids[k]), score=round(float(s), 5))
                  for b, k, s in zip(boxes[rows], classes[rows], scores[rows])]


def detections_from_scores(detector: Detector, image: Image.Image, cores: np.ndarray,
                           proba: np.ndarray, min_score: float) -> list[Detection]:
    return kept_candidates(detector, image, cores, proba, min_score)[1]


def detect_image(detector: Detector, image: str | os.PathLike | Image.Image,
                 min_score: float | None = None, max_pixels: int = MAX_PIXELS) -> list[Detection]:
    """Every symbol found in one drawing (path or PIL image), best score first.

    `min_score` defaults to the detector's threshold chosen on its training split; pass 0 for
    every scored box (as mAP wants). Non-images and drawings over `max_pixels` raise FfclrError.
    """
    rgb_image, _ = read_drawing(image, max_pixels)
    return detect_rgb(detector, rgb_image, min_score)


@dataclass
class ScoredDetections:
    """A drawing's detections down to the config's `min_score`, best first, with what the probe
    read and said for each."""

    detections: list[Detection]
    features: np.ndarray
    """(len(detections), D): what the probe read for each (`probe_features`)."""
    proba: np.ndarray
    """(len(detections), n_classes + 1): the probe's probabilities, background last."""
    log_scale: float = 0.0
    """The drawing's log scale against the training drawings, as the size prior read it."""

    def take(self, rows) -> "ScoredDetections":
        return ScoredDetections([self.detections[r] for r in rows], self.features[rows],
                                self.proba[rows], self.log_scale)


def _detect_once(detector: Detector, image: Image.Image) -> ScoredDetections:
    candidates = select_candidates(detector, image)
    if len(candidates.boxes) == 0:
        return ScoredDetections([], np.zeros((0, detector.probe.feature_dim), np.float32),
                                np.zeros((0, detector.background_index + 1)))
    features = probe_features(detector, image, candidates.boxes)
    proba = detector.probe.predict_proba(features)
    rows, found = kept_candidates(detector, image, candidates.cores, proba,
                                  detector.config.min_score)
    return ScoredDetections(found, features[rows], proba[rows],
                            drawing_scale(detector, candidates.cores, proba))


def detect_scored(detector: Detector, image: Image.Image) -> ScoredDetections:
    """Every detection of a drawing (PIL image) down to the config's `min_score`; a drawing
    whose scale the size prior reads beyond `rescale_beyond` gets the second pass
    (`rescale.py`)."""
    first = _detect_once(detector, image)
    factor = rescale_factor(first.log_scale, detector.config.rescale_beyond)
    at_training_scale = None if factor is None else resampled(image, factor)
    if at_training_scale is None:
        return first
    second = _detect_once(detector, at_training_scale)
    back, kept = scaled_back(second.detections, factor, image.size)
    second = ScoredDetections(back, second.features[kept], second.proba[kept])
    rows = merged_passes(first.detections, second.detections, detector.score_threshold,
                         detector.config.nms_iou)
    both = ScoredDetections(first.detections + second.detections,
                            np.concatenate([first.features, second.features]),
                            np.concatenate([first.proba, second.proba]), first.log_scale)
    return both.take(rows)


def detect_rgb(detector: Detector, image: Image.Image, min_score: float | None = None
               ) -> list[Detection]:
    threshold = detector.score_threshold if min_score is None else min_score
    return [d for d in detect_scored(detector, image).detections
            if d.score >= max(threshold, detector.config.min_score)]


def detect_images(detector: Detector, images: list, min_score: float | None = None,
                  progress: Progress | None = None, max_pixels: int = MAX_PIXELS
                  ) -> list[tuple[str, tuple[int, int], list[Detection]]]:
    """(file name, (width, height), detections) per drawing; a bad file raises FfclrError."""
    results = []
    for done, source in enumerate(images):
        rgb_image, name = read_drawing(source, max_pixels)
        results.append((name, rgb_image.size, detect_rgb(detector, rgb_image, min_score)))
        if progress:
            progress(done + 1, len(images), f"detected {len(results[-1][2])} symbols in {name}")
    return results
