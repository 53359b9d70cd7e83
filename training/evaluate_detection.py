"""Face detection AP with the WIDER FACE protocol (IoU 0.5, invalid faces ignored, 1000 thresholds, VOC AP).

    python training/evaluate_detection.py --detector mtcnn --weights package \\
        --gt ../shared/data/afw_detection/afw_bbx_gt.txt --images ../shared/data/afw_detection/images
    python training/evaluate_detection.py --detector mtcnn --weights runs/mtcnn_pnet runs/mtcnn_rnet \\
        runs/mtcnn_onet --backend tflite --gt wider_face_val_bbx_gt.txt --images WIDER_val/images \\
        --difficulty-mats wider_face_split/       # adds easy / medium / hard from wider_{easy,medium,hard}_val.mat
    python training/evaluate_detection.py --detector mtcnn-package ...   # the `mtcnn` 1.0.0 package itself
    python training/evaluate_detection.py --detector blazeface-full --score 0.05 ...  # MediaPipe's, as a baseline
    python training/evaluate_detection.py --detector dbface --run runs/dbface_small [--backend tflite] \
        --gt ../shared/data/afw_detection/label.txt --images ../shared/data/afw_detection/images --grid worst.png

--gt takes the official bbx_gt file or RetinaFace's label.txt. MTCNN uses thresholds 0.6/0.7/0.7 unless
--thresholds says otherwise (the WIDER protocol wants low thresholds for a full curve, e.g. 0.6 0.7 0.1). DBFace
letterboxes each photo to --size (640), keeps peaks scoring >= --score (0.05) and runs greedy NMS at --nms (0.4);
--backend tflite runs RUN/export/MODEL_fp32.tflite (or --tflite FILE) on LiteRT. With five-point ground truth
(label.txt) the five-point NME (inter-ocular) of the faces matched at IoU >= 0.5 is reported too; --grid draws the
photos with the most misses and false positives at --grid-score (truth green, detections red). blazeface-short
and blazeface-full run MediaPipe's models from the mediapipe==0.10.21 wheel (pip install --no-deps; a baseline, never
shipped) at --score and --nms, with the eyes and nose of its keypoints as the five points (mouth corners unknown).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from facekit.files import read_yaml, write_json

SUBSETS = ("easy", "medium", "hard")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", choices=["mtcnn", "mtcnn-package", "dbface", "blazeface-short", "blazeface-full"],
                   default="mtcnn")
    p.add_argument("--run", help="dbface: the training run folder")
    p.add_argument("--tflite", help="dbface with --backend tflite: the exported .tflite (default RUN/export/...)")
    p.add_argument("--size", type=int, default=640, help="dbface: letterbox side")
    p.add_argument("--score", type=float, default=0.05, help="dbface, blazeface: lowest score kept")
    p.add_argument("--nms", type=float, default=0.4, help="dbface, blazeface: greedy NMS IoU threshold")
    p.add_argument("--grid", help="write a PNG of the worst photos here")
    p.add_argument("--grid-score", type=float, default=0.5, help="score threshold of the detections drawn")
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
    """-> function (RGB uint8 image) -> Detections."""
    import numpy as np

    from facekit.infer.detections import Detections

    if args.detector == "dbface":
        return dbface_detector(args)
    if args.detector.startswith("blazeface"):
        from facekit.infer.blazeface import BlazeFaceDetector

        blazeface = BlazeFaceDetector(args.detector, score_threshold=args.score, nms_threshold=args.nms)
        return lambda image: blazeface.detect(image, color="rgb")
    options = dict(thresholds=args.thresholds, min_face=args.min_face)
    if args.detector == "mtcnn-package":
        from mtcnn import MTCNN as Package

        package = Package()
        kwargs = dict(threshold_pnet=args.thresholds[0], threshold_rnet=args.thresholds[1],
                      threshold_onet=args.thresholds[2], min_face_size=args.min_face)

        def detect(image):
            rows = np.asarray(package.detect_faces(image.copy(), output_type="numpy", box_format="xyxy",
                                                   **kwargs)).reshape(-1, 16)
            return Detections(rows[:, 1:5], rows[:, 5], np.full((len(rows), 5, 2), np.nan))
        return detect
    if args.backend == "tflite":
        import tempfile

        from facekit.detection.mtcnn.networks import export_mtcnn
        from facekit.infer.mtcnn import tflite_cascade
        folder = tempfile.mkdtemp(prefix="mtcnn_tflite_")
        export_mtcnn(_networks(args.weights), folder)
        cascade = tflite_cascade(folder, **options)
    else:
        from facekit.detection.mtcnn.networks import keras_cascade
        cascade = keras_cascade(_networks(args.weights), **options)

    return lambda image: cascade.detect(image, color="rgb")


def dbface_detector(args):
    if not args.run and not args.tflite:
        raise ValueError("--detector dbface needs --run RUN (or --tflite FILE with --backend tflite)")
    if args.backend == "tflite":
        from facekit.infer.detector import FaceDetector

        path = args.tflite or _exported_model(args.run)
        detector = FaceDetector(path, score_threshold=args.score, nms_threshold=args.nms)
        if detector.size != args.size:
            print(f"note: {path} takes {detector.size}x{detector.size}; --size {args.size} is not used")
        return lambda image: detector.detect(image, color="rgb")
    import models  # noqa: F401
    from facekit.detection.dbface.training import detect_scenes, peaks_function
    from facekit.export import rebuild_float32

    network, codec, _, _ = rebuild_float32(args.run)
    peaks = peaks_function(network, codec)
    return lambda image: detect_scenes(peaks, [{"image": image}], args.size, args.score, args.nms)[0]


def _exported_model(run_dir: str) -> str:
    model = read_yaml(os.path.join(run_dir, "config.yaml"))["model"]
    path = os.path.join(run_dir, "export", f"{model}_fp32.tflite")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not exported yet; run python freeze/export.py --run {run_dir}")
    return path


def _networks(weights):
    import models  # noqa: F401
    from facekit.detection.mtcnn.networks import load_run_networks
    from models.mtcnn import imported_networks

    return imported_networks() if weights == ["package"] else load_run_networks(weights)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import numpy as np
    from tqdm import tqdm

    from facekit.detection.evaluation import average_precision, matched_point_nme, read_difficulty_mat
    from facekit.records.datasets.wider import read_wider_annotations

    for flag, path, is_dir in (("--gt", args.gt, False), ("--images", args.images, True)):
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            print(f"error: {flag} {path}: no such {'folder' if is_dir else 'file'}", file=sys.stderr)
            return 2
    try:
        images = read_wider_annotations(args.gt)[:args.limit]
        subsets = {name: read_difficulty_mat(os.path.join(args.difficulty_mats, f"wider_{name}_val.mat"))
                   for name in SUBSETS} if args.difficulty_mats else {}
        detect = make_detector(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    found, start = [], time.perf_counter()
    for item in tqdm(images, desc="detecting", unit="image", disable=None):
        path = os.path.join(args.images, item.path)
        image = cv2.imread(path)
        if image is None:
            print(f"error: {path}: missing or not an image", file=sys.stderr)
            return 2
        found.append(detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    seconds = time.perf_counter() - start
    detections = [(d.boxes_xyxy, d.scores) for d in found]
    truths = [item.boxes_xyxy for item in images]
    results = {"images": len(images), "faces": int(sum((~i.invalid).sum() for i in images)),
               "detections": int(sum(len(d) for d in found)), "seconds_per_image": seconds / len(images),
               "ap": average_precision(detections, truths, [item.invalid for item in images])}
    nme, matched = matched_point_nme(found, truths, [item.landmarks_px for item in images])
    if matched:
        results.update(five_point_nme=nme, nme_faces=matched)
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
        write_json(args.json, {**results, "args": vars(args)})
    if args.grid:
        write_worst_grid(args.grid, found, images, args.images, args.grid_score)
        print(f"worst photos drawn in {args.grid}")
    return 0


def write_worst_grid(path: str, found: list, images: list, folder: str, score: float, count: int = 12) -> None:
    """The photos with the most misses + false positives at `score`: truth green, detections red with scores."""
    import cv2
    import numpy as np

    from facekit.boxes import box_iou
    from facekit.draw import draw_detections, letterbox_tile, tile

    def errors(detections, item):
        keep = detections.scores >= score
        if not len(item.boxes_xyxy):
            return int(keep.sum())
        hit = box_iou(detections.boxes_xyxy[keep], item.boxes_xyxy) >= 0.5 if keep.any() else np.zeros((0, 1), bool)
        return int((~hit.any(axis=0)).sum() + (~hit.any(axis=1)).sum())

    ranked = sorted(range(len(images)), key=lambda i: -errors(found[i], images[i]))[:count]
    tiles = []
    for i in ranked:
        image = cv2.imread(os.path.join(folder, images[i].path))
        thickness = max(1, round(max(image.shape[:2]) / 400))
        image = draw_detections(image, images[i].boxes_xyxy, None, (0, 255, 0), thickness)
        keep = found[i].scores >= score
        image = draw_detections(image, found[i].boxes_xyxy[keep], found[i].landmarks_px[keep], (0, 0, 255), thickness)
        for box, value in zip(found[i].boxes_xyxy[keep], found[i].scores[keep]):
            cv2.putText(image, f"{value:.2f}", (int(box[0]), max(10, int(box[1]) - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thickness, (0, 0, 255), thickness)
        tiles.append(letterbox_tile(image, 320))
    cv2.imwrite(path, tile(tiles, columns=4))


if __name__ == "__main__":
    sys.exit(main())
