"""Face detection AP with the WIDER FACE protocol (IoU 0.5, invalid faces ignored, 1000 thresholds, VOC AP).

    python training/evaluate_detection.py --detector mtcnn --weights package \\
        --gt ../shared/data/afw_detection/afw_bbx_gt.txt --images ../shared/data/afw_detection/images
    python training/evaluate_detection.py --detector mtcnn --weights runs/mtcnn_pnet runs/mtcnn_rnet \\
        runs/mtcnn_onet --backend tflite --gt wider_face_val_bbx_gt.txt --images WIDER_val/images \\
        --difficulty-mats wider_face_split/       # adds easy / medium / hard from wider_{easy,medium,hard}_val.mat
    python training/evaluate_detection.py --detector mtcnn-package ...   # the `mtcnn` 1.0.0 package itself

--gt takes the official bbx_gt file or RetinaFace's label.txt. Detection uses thresholds 0.6/0.7/0.7 unless
--thresholds says otherwise (the WIDER protocol wants low thresholds for a full curve, e.g. 0.6 0.7 0.1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

SUBSETS = ("easy", "medium", "hard")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", choices=["mtcnn", "mtcnn-package"], default="mtcnn")
    p.add_argument("--weights", nargs="+", default=["package"], help="'package' or the P, R and O training runs")
    p.add_argument("--backend", choices=["keras", "tflite"], default="keras")
    p.add_argument("--gt", required=True, help="wider_face_*_bbx_gt.txt or RetinaFace label.txt")
    p.add_argument("--images", required=True, help="folder the annotation paths are relative to")
    p.add_argument("--difficulty-mats", help="folder with wider_{easy,medium,hard}_val.mat")
    p.add_argument("--thresholds", nargs=3, type=float, default=[0.6, 0.7, 0.7])
    p.add_argument("--min-face", type=float, default=20.0)
    p.add_argument("--limit", type=int, help="evaluate the first N images only")
    p.add_argument("--json", help="write the results here")
    return p.parse_args(argv)


def make_detector(args):
    """-> function (RGB uint8 image) -> (boxes (D, 4) xyxy, scores (D,))."""
    import numpy as np

    options = dict(thresholds=args.thresholds, min_face=args.min_face)
    if args.detector == "mtcnn-package":
        from mtcnn import MTCNN as Package

        package = Package()
        kwargs = dict(threshold_pnet=args.thresholds[0], threshold_rnet=args.thresholds[1],
                      threshold_onet=args.thresholds[2], min_face_size=args.min_face)

        def detect(image):
            rows = np.asarray(package.detect_faces(image.copy(), output_type="numpy", box_format="xyxy",
                                                   **kwargs)).reshape(-1, 16)
            return rows[:, 1:5], rows[:, 5]
        return detect
    if args.backend == "tflite":
        import tempfile

        from facekit.infer.mtcnn import tflite_cascade
        from facekit.mtcnn import export_mtcnn
        folder = tempfile.mkdtemp(prefix="mtcnn_tflite_")
        export_mtcnn(_networks(args.weights), folder)
        cascade = tflite_cascade(folder, **options)
    else:
        from facekit.mtcnn import keras_cascade
        cascade = keras_cascade(_networks(args.weights), **options)

    def detect(image):
        found = cascade.detect(image, color="rgb")
        return found.boxes_xyxy, found.scores
    return detect


def _networks(weights):
    import models  # noqa: F401
    from facekit.mtcnn import load_run_networks
    from models.mtcnn import imported_networks

    return imported_networks() if weights == ["package"] else load_run_networks(weights)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import numpy as np
    from tqdm import tqdm

    from facekit.datasets.wider import read_wider_annotations
    from facekit.detection_eval import average_precision, read_difficulty_mat

    try:
        images = read_wider_annotations(args.gt)[:args.limit]
        subsets = {name: read_difficulty_mat(os.path.join(args.difficulty_mats, f"wider_{name}_val.mat"))
                   for name in SUBSETS} if args.difficulty_mats else {}
        detect = make_detector(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    detections, start = [], time.perf_counter()
    for item in tqdm(images, desc="detecting", unit="image", disable=None):
        path = os.path.join(args.images, item.path)
        image = cv2.imread(path)
        if image is None:
            print(f"error: {path}: missing or not an image", file=sys.stderr)
            return 2
        detections.append(detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    seconds = time.perf_counter() - start
    truths = [item.boxes_xyxy for item in images]
    results = {"images": len(images), "faces": int(sum((~i.invalid).sum() for i in images)),
               "detections": int(sum(len(s) for _, s in detections)), "seconds_per_image": seconds / len(images),
               "ap": average_precision(detections, truths, [item.invalid for item in images])}
    for name, subset in subsets.items():
        ignores = []
        for item in images:
            keep = np.zeros(len(item.boxes_xyxy), bool)
            keep[subset.get(os.path.splitext(os.path.basename(item.path))[0], np.zeros(0, int))] = True
            ignores.append(item.invalid | ~keep)
        results[f"ap_{name}"] = average_precision(detections, truths, ignores)
    print(" ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                   for key, value in results.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**results, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
