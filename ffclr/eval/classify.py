"""Classify new symbol crops: top-k classes, the nearest training crops, an "unknown" flag.

A crop is preprocessed exactly as in training (`ffclr.data.preprocess` via `ffclr.eval.embedding`),
embedded by the frozen encoder and scored by the linear probe. The reference is the training
split's features: each query's nearest training crops by cosine similarity, and "unknown symbol"
when its distance to the nearest one exceeds a threshold calibrated on the training split itself
(`UNKNOWN_PERCENTILE`-th percentile of each training crop's distance to its nearest other crop).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ffclr.data.stroke_scale import SCHEMATIC_STROKES, schematic_threshold, strokes_across
from ffclr.errors import FfclrError
from ffclr.eval.neighbours import cosine_neighbours, l2_normalise

UNKNOWN_PERCENTILE = 99.0
SCHEMATIC_SAMPLE = 200
"""Training crops whose stroke widths across set the whole-schematic bar."""
CALIBRATION_ROWS = 5_000
"""Training crops whose nearest-other distance calibrates the unknown-symbol flag (a sample
beyond this many)."""


@dataclass
class Reference:
    features: np.ndarray
    """L2-normalised training features."""
    labels: np.ndarray
    paths: list[str]
    crop_ids: list[int | None]
    class_names: list[str]
    unknown_distance: float
    """Cosine distance to the nearest training crop beyond which a query is flagged unknown."""
    schematic_strokes: float = SCHEMATIC_STROKES
    """Stroke widths across (`ffclr.data.stroke_scale`) from which an image is a whole
    schematic rather than a symbol, set from a sample of the training crops."""


def nearest_other_distance(features: np.ndarray, rows: int = CALIBRATION_ROWS,
                           seed: int = 0) -> np.ndarray:
    """Cosine distance of each row to its nearest other row (leave-one-out); beyond `rows`
    rows, of a random sample of `rows` of them, each against all: a percentile of them is read
    as well from the sample, in time that grows with the rows rather than their square."""
    if len(features) <= rows:
        return 1.0 - cosine_neighbours(features, features, 1, leave_one_out=True)[1][:, 0]
    sample = np.sort(np.random.default_rng(seed).choice(len(features), rows, replace=False))
    nearest, similarities = cosine_neighbours(features[sample], features, 2)
    return 1.0 - np.where(nearest[:, 0] == sample, similarities[:, 1], similarities[:, 0])


def build_reference(features: np.ndarray, labels: np.ndarray, paths: Sequence,
                    class_names: list[str], crop_ids: Sequence | None = None,
                    percentile: float = UNKNOWN_PERCENTILE) -> Reference:
    if len(features) < 2:
        raise FfclrError("need at least two training crops to calibrate the unknown-symbol flag")
    threshold = float(np.percentile(nearest_other_distance(features), percentile))
    return Reference(features=l2_normalise(features), labels=np.asarray(labels),
                     paths=[str(p) for p in paths],
                     crop_ids=list(crop_ids) if crop_ids is not None else [None] * len(paths),
                     class_names=list(class_names), unknown_distance=threshold,
                     schematic_strokes=schematic_threshold(symbols_across(paths)))


def symbols_across(paths: Sequence, sample: int = SCHEMATIC_SAMPLE, seed: int = 0) -> np.ndarray:
    """`strokes_across` of a sample of the crops at `paths`; unreadable ones are left out."""
    from ffclr.data.preprocess import load_image_rgb

    rng = np.random.default_rng(seed)
    picked = rng.choice(len(paths), min(sample, len(paths)), replace=False) if len(paths) else []
    across = []
    for index in picked:
        try:
            across.append(strokes_across(np.asarray(load_image_rgb(paths[index]))))
        except FfclrError:
            continue
    return np.array(across)


@dataclass
class ClassifyResult:
    source: str
    error: str | None = None
    """Why this file could not be classified (then every other field is empty)."""
    top: list[tuple[str, float]] = field(default_factory=list)
    """(class name, probability), most probable first."""
    neighbours: list[dict] = field(default_factory=list)
    """Nearest training crops: path, crop_id, class, similarity."""
    distance: float | None = None
    """Cosine distance to the nearest training crop."""
    unknown: bool = False

    @property
    def label(self) -> str | None:
        return self.top[0][0] if self.top else None


def classify_images(paths: Sequence, encoder, probe, reference: Reference, top_k: int = 5,
                    n_neighbours: int = 5) -> list[ClassifyResult]:
    """One result per input (path or PIL image), in order; unreadable files, images without
    strokes and whole schematics get `error` set."""
    from ffclr.data.preprocess import load_image_rgb
    from ffclr.eval.embedding import embed_images

    if probe.class_names != reference.class_names:
        raise FfclrError("the probe and the reference crops come from datasets with different classes")
    results, images, rows = [], [], []
    for item in paths:
        name = str(item) if not hasattr(item, "size") else getattr(item, "filename", "") or "image"
        results.append(ClassifyResult(source=name))
        try:
            image = load_image_rgb(item)
        except FfclrError as exc:
            results[-1].error = str(exc)
            continue
        across = strokes_across(np.asarray(image))
        if across == 0:
            results[-1].error = (f"{name}: {image.width} × {image.height} px of one colour, no "
                                 "strokes: nothing to classify")
            continue
        if across >= reference.schematic_strokes:
            results[-1].error = (f"{name}: a whole schematic ({image.width} × {image.height} px, "
                                 f"{across:.0f} stroke widths across), not one symbol: find its "
                                 "symbols under Whole schematics, or with python -m ffclr detect")
            continue
        images.append(image)
        rows.append(len(results) - 1)
    if not images:
        return results
    features = embed_images(images, encoder)
    proba = probe.predict_proba(features)
    nearest, similarities = cosine_neighbours(features, reference.features, n_neighbours,
                                              unit_memory=True)
    for row, index in enumerate(rows):
        result = results[index]
        best = np.argsort(-proba[row], kind="stable")[:top_k]
        result.top = [(probe.class_names[c], float(proba[row, c])) for c in best
                      if proba[row, c] > 0]
        result.neighbours = [{"path": reference.paths[j], "crop_id": reference.crop_ids[j],
                              "class": reference.class_names[reference.labels[j]],
                              "similarity": float(sim)}
                             for j, sim in zip(nearest[row], similarities[row])]
        result.distance = float(1.0 - similarities[row, 0])
        result.unknown = result.distance > reference.unknown_distance
    return results


def format_result(result: ClassifyResult) -> list[str]:
    if result.error:
        return [f"skipped: {result.error}"]
    flag = "  UNKNOWN SYMBOL (far from all training crops)" if result.unknown else ""
    lines = [f"{result.source}: {result.label} ({result.top[0][1]:.1%}){flag}"]
    lines.append("  top: " + ", ".join(f"{name} {p:.1%}" for name, p in result.top))
    lines.append(f"  nearest training crops (distance {result.distance:.3f}):")
    lines += [f"    {n['similarity']:.3f}  {n['class']}  {Path(n['path']).name}"
              for n in result.neighbours]
    return lines


def load_classifier(checkpoint: str | Path, probe_path: str | Path, workspace,
                    train_data: str | Path | None = None, device: str = "cpu"):
    """(encoder, probe, reference) for `classify_images`: the reference is the probe's own
    training crops (recorded in the probe) unless `train_data` names others."""
    from ffclr.model.checkpoint import load_encoder
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.eval.evaluate import reload_crop_set
    from ffclr.data.cropset import load_crop_set
    from ffclr.eval.probe import Probe

    probe = Probe.load(probe_path)
    encoder = load_encoder(checkpoint, device)
    if encoder.feature_dim != probe.feature_dim:
        raise FfclrError(f"{probe_path} was fitted on {probe.feature_dim}-d features, "
                         f"{checkpoint} gives {encoder.feature_dim}-d")
    if train_data:
        train = load_crop_set(train_data, workspace)
    elif probe.info.get("train_data"):
        train = reload_crop_set(probe.info["train_data"], workspace)
    else:
        raise FfclrError(f"{probe_path} does not record its training crops: give --train DIR")
    names = {n: i for i, n in enumerate(probe.class_names)}
    missing = sorted(set(train.class_names) - set(names))
    if missing:
        raise FfclrError(f"training crops have classes the probe lacks: {', '.join(missing[:5])}")
    labels = np.array([names[train.class_names[i]] for i in train.labels], dtype=np.int64)
    features = embed_crop_set(train, checkpoint, workspace, encoder).features
    return encoder, probe, build_reference(features, labels, train.paths, probe.class_names,
                                           train.crop_ids)
