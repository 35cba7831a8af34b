"""Find every symbol in a whole drawing: stroke proposals scored by the encoder and a probe with
a background class. Public API (used by the CLI and the UI's Classify tab):

- `fit_detector(checkpoint, export, split="train") -> Detector`, `save_detector`, `load_detector`
- `detect_image(detector, path_or_pil) -> list[Detection]`, `detect_images(...)`
- `detections_to_coco(results, class_names, category_ids)`, `write_coco`
- `draw_detections(image, detections) -> PIL.Image`
"""
from ffclr.detection.artifact import load_detector, save_detector
from ffclr.detection.coco_output import detections_to_coco, write_coco
from ffclr.detection.detector import (Detection, Detector, DetectorConfig, detect_image,
                                      detect_images)
from ffclr.detection.images import MAX_PIXELS, read_drawing
from ffclr.detection.training import fit_detector

__all__ = ["Detection", "Detector", "DetectorConfig", "MAX_PIXELS", "detect_image",
           "detect_images", "detections_to_coco", "fit_detector", "load_detector",
           "read_drawing", "save_detector", "write_coco"]
