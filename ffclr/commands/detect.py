"""`python -m ffclr detect`: find every symbol in whole drawings, write COCO (+ drawings)."""
from __future__ import annotations

from ffclr.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "detect",
                         "find every symbol in whole drawings with a fitted detector; write a "
                         "COCO file (imports into ffclr, CVAT, Label Studio)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="drawings (any Pillow format)")
    parser.add_argument("--detector", required=True, metavar="DETECTOR",
                        help="a file written by `ffclr detector fit`")
    parser.add_argument("--out", required=True, metavar="DETS.json", help="COCO file to write")
    parser.add_argument("--viz", metavar="DIR", help="also draw the boxes into DIR/<image>.png")
    parser.add_argument("--min-score", type=float, metavar="S",
                        help="keep boxes scoring at least S (default: the detector's threshold, "
                             "chosen on its training split)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ffclr.detection import (detections_to_coco, detect_image, load_detector, read_drawing,
                                 write_coco)
    from ffclr.detection.visualise import draw_detections
    from ffclr.errors import FfclrError
    from ffclr.data.safe_paths import safe_name

    detector = load_detector(args.detector)
    results, failed = [], 0
    for source in args.images:
        try:
            image, name = read_drawing(source)
        except FfclrError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        found = detect_image(detector, image, args.min_score)
        results.append((name, image.size, found))
        print(f"{source}: {len(found)} symbols")
        if args.viz:
            out = Path(args.viz) / f"{safe_name(Path(name).stem, 'image')}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            draw_detections(image, found).save(out)
    if not results:
        raise FfclrError("no readable drawing among the inputs")
    path = write_coco(detections_to_coco(results, detector.class_names, detector.category_ids),
                      args.out)
    total = sum(len(r[2]) for r in results)
    print(f"wrote {total} detections in {len(results)} drawings to {path}")
    return 1 if failed else 0
