"""A detector as ONE `.npz` file: the encoder's weights, probe, margins, pixel filter and
settings as plain arrays plus a JSON header. Loaded with `allow_pickle=False`: it can never run
code, and it no longer needs the checkpoint it was fitted from."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ffclr.data.npz_files import READ_ERRORS, npz_path
from ffclr.derived_files import write_aside
from ffclr.errors import FfclrError
from ffclr.typed_fields import check_fields

FORMAT = "ffclr-detector"
VERSION = 1


def save_detector(detector, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename); returns the path written."""
    path = npz_path(path)
    encoder, probe = detector.encoder, detector.probe
    model = encoder.model.model if hasattr(encoder.model, "model") else encoder.model
    meta = {
        "format": FORMAT, "version": VERSION,
        "class_names": detector.class_names, "category_ids": detector.category_ids,
        "score_threshold": detector.score_threshold, "accept_threshold": detector.accept_threshold,
        "config": asdict(detector.config),
        "info": detector.info,
        "encoder": {"arch": encoder.arch, "image_size": encoder.image_size,
                    "mean": list(encoder.mean), "std": list(encoder.std),
                    "out_dim": int(model.out_dim), "small_stem": bool(model.small_stem)},
        "probe": {"class_names": probe.class_names, "method": probe.method, "info": probe.info},
        "pixel_filter_threshold": detector.pixel_filter.threshold,
    }
    arrays = {f"encoder/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays.update({
        "probe/mean": probe.mean, "probe/scale": probe.scale, "probe/coef": probe.coef,
        "probe/intercept": probe.intercept, "probe/trained": probe.trained,
        "margins": detector.margins.coef,
        "pixel_filter/mean": detector.pixel_filter.mean,
        "pixel_filter/scale": detector.pixel_filter.scale,
        "pixel_filter/coef": detector.pixel_filter.coef,
        "pixel_filter/intercept": detector.pixel_filter.intercept,
    })
    if detector.size_prior is not None:
        arrays.update({"size_prior/log_size": detector.size_prior.log_size,
                       "size_prior/spread": detector.size_prior.spread,
                       "size_prior/shrink": detector.size_prior.shrink})
    if detector.refiner is not None:
        arrays.update({"refiner/coef": detector.refiner.coef,
                       "refiner/intercept": detector.refiner.intercept})
    write_aside(path, lambda tmp: np.savez(tmp, meta=np.array(json.dumps(meta, default=float)),
                                           **arrays))
    return path


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _config_from(raw: dict):
    """The saved `DetectorConfig`; a detector saved before the second pass at the training
    drawings' scale existed keeps detecting in one pass."""
    from ffclr.detection.detector import DetectorConfig
    from ffclr.detection.proposals import ProposalConfig
    from ffclr.detection.refine import RefinerConfig

    saved = raw.pop("proposals")
    if not isinstance(saved, dict):
        raise ValueError("config.proposals: not a set of settings")
    proposals = ProposalConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in saved.items()})
    raw.setdefault("rescale_beyond", None)
    if "refinement" in raw:
        refinement = raw.pop("refinement")
        if not (refinement is None or isinstance(refinement, dict)):
            raise ValueError("config.refinement: not a set of settings")
        raw["refinement"] = None if refinement is None else RefinerConfig(**refinement)
    config = DetectorConfig(proposals=proposals, **raw)
    check_fields(config, "config.")
    p, r = config.proposals, config.refinement
    for ok, what in (
            (all(v >= 2 for v in p.cut_lengths) and p.cut_lengths, "proposals.cut_lengths"),
            (p.ink_threshold < 255 and 1 <= p.max_layers <= 64, "proposals' ink and layers"),
            (1 <= p.min_side <= p.max_side and p.tile > 2 * p.max_side,
             "proposals' sides and tile"),
            (all(0 < v <= 1 for v in (p.dedupe_iou, config.proposal_dedupe_iou, config.nms_iou)),
             "the overlaps"),
            (config.max_candidates >= 1, "max_candidates"),
            (r is None or (1 <= r.grid <= 256 and r.context <= 10), "refinement")):
        if not ok:
            raise ValueError(f"config: {what} out of range")
    return config


def _encoder_meta(enc) -> dict:
    """The saved encoder's settings, checked: a crop side and three channel means and
    deviations (finite; deviations positive)."""
    size = enc.get("image_size") if isinstance(enc, dict) else None
    if not (isinstance(size, int) and not isinstance(size, bool) and 8 <= size <= 1024):
        raise ValueError(f"encoder.image_size: {size!r} is not a crop side of 8 to 1024 px")
    for key, low in (("mean", -math.inf), ("std", 0.0)):
        values = enc.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and v > low for v in values)):
            raise ValueError(f"encoder.{key}: {values!r} is not three finite numbers"
                             + (" above 0" if low == 0 else ""))
    return enc


def load_detector(path: str | os.PathLike, device: str = "cpu"):
    """The `Detector` saved at `path`; a missing or foreign file raises FfclrError."""
    import torch

    from ffclr.model.checkpoint import Encoder
    from ffclr.detection.boxes import MarginModel
    from ffclr.detection.detector import Detector
    from ffclr.detection.scoring import LinearScorer
    from ffclr.detection.refine import BoxRefiner
    from ffclr.detection.sizes import SizePrior
    from ffclr.model.networks import FeatureExtractor, SimCLRModel
    from ffclr.eval.probe import Probe

    given = Path(path)
    path = given if given.is_file() else npz_path(given)
    if not path.is_file():
        raise FfclrError(f"{given}: no such detector file")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError("not an ffclr detector")
            if meta.get("version", 0) > VERSION:
                raise ValueError(f"format version {meta['version']} is newer than this ffclr")
            arrays = {k: data[k] for k in data.files if k != "meta"}
        enc = _encoder_meta(meta["encoder"])
        names, ids = meta["class_names"], meta["category_ids"]
        if not (isinstance(names, list) and isinstance(ids, list) and names
                and len(names) == len(ids) and all(isinstance(n, str) for n in names)):
            raise ValueError("class_names and category_ids: not two lists of one entry a class")
        model = SimCLRModel(enc["arch"], out_dim=enc["out_dim"], small_stem=enc["small_stem"])
        model.load_state_dict({k.removeprefix("encoder/"): torch.from_numpy(v)
                               for k, v in arrays.items() if k.startswith("encoder/")})
        extractor = FeatureExtractor(model).to(device).eval()
        extractor.to(memory_format=torch.channels_last)
        encoder = Encoder(model=extractor, image_size=int(enc["image_size"]),
                          mean=tuple(enc["mean"]), std=tuple(enc["std"]), arch=enc["arch"],
                          feature_dim=model.feature_dim, path=path)
        probe = Probe(class_names=meta["probe"]["class_names"], mean=arrays["probe/mean"],
                      scale=arrays["probe/scale"], coef=arrays["probe/coef"],
                      intercept=arrays["probe/intercept"],
                      trained=arrays["probe/trained"].astype(bool),
                      method=meta["probe"]["method"], info=meta["probe"]["info"])
        pixel_filter = LinearScorer(arrays["pixel_filter/mean"], arrays["pixel_filter/scale"],
                                    arrays["pixel_filter/coef"],
                                    arrays["pixel_filter/intercept"],
                                    float(meta["pixel_filter_threshold"]))
        size_prior = (SizePrior(arrays["size_prior/log_size"], arrays["size_prior/spread"],
                                arrays.get("size_prior/shrink", np.zeros(2)))
                      if "size_prior/log_size" in arrays else None)
        config = _config_from(dict(meta["config"]))
        refiner = None
        if "refiner/coef" in arrays and config.refinement is not None:
            refiner = BoxRefiner(arrays["refiner/coef"], arrays["refiner/intercept"],
                                 config.refinement)
            if refiner.coef.shape[1:] != (4,) or refiner.n_classes != len(meta["class_names"]):
                raise ValueError(f"refiner weights of shape {refiner.coef.shape} do not fit "
                                 f"its {config.refinement.grid}-cell grid")
        return Detector(encoder=encoder, probe=probe, class_names=list(meta["class_names"]),
                        category_ids=[int(i) for i in meta["category_ids"]],
                        margins=MarginModel(arrays["margins"]), pixel_filter=pixel_filter,
                        score_threshold=float(meta["score_threshold"]),
                        accept_threshold=_optional_float(meta.get("accept_threshold")),
                        config=config, info=meta.get("info", {}),
                        size_prior=size_prior, refiner=refiner)
    except FfclrError:
        raise
    except (*READ_ERRORS, TypeError, RuntimeError) as exc:
        raise FfclrError(f"{path}: not a detector saved by ffclr ({str(exc).splitlines()[0][:200]})"
                         ) from None
