"""The detect -> align pipeline's 68-point accuracy with each detector feeding it, next to given true boxes.

    python benchmarks/pipeline_accuracy.py --landmarks L.tflite [--dbface M.tflite ...] [--refiner R.tflite]
        [--refiner-passes 2] [--no-blazeface] [--no-mtcnn]

    L: a 68-point model, e.g. runs/five_point_refiner/ibug68_96/export/senet_small_fp32.tflite

Photos: the validation mosaics of benchmarks/dbface_accuracy.py (its 100 held-out HELEN faces, tiled four to a
640 x 640 photo at AFW's face sizes, 32-180 px): AFW-like photos whose faces have 68 true points. The mosaics'
labels keep five points; each face's 68 are recovered from its HELEN annotation through the scale and shift that
map its five points onto the label's (the mosaics only scale and move the photos). The landmark model must not
have trained on these faces: the refiner of benchmarks/five_point_refiner.py (68 points, the same held-out split)
is the default. Rows: `true boxes` (the crop from each face's true landmark extent: the model alone), then
facekit.infer.pipeline.FacePipeline fed by BlazeFace full range (its eyes, nose and mouth centre: its box sets
the crop), our LiteRT MTCNN cascade with the `mtcnn` package's weights (min face 20), each --dbface export, and
with --refiner each DBFace export again with its five points refined (FivePointRefiner). Columns: faces found
(a pipeline face whose box overlaps the truth's at IoU >= 0.3; score >= 0.5) of the faces with points, and the
68-point NME of the found faces (inter-ocular: outer eye corners), mean and median, with the share above 0.10.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
MOSAICS = os.path.join("runs", "dbface_accuracy", "records", "helen_val_mosaics_photos")
VAL_LIST = os.path.join("runs", "dbface_accuracy", "records", "splits", "helen_train_val.txt")
SCORE, MATCH_IOU, FAILURE_NME = 0.5, 0.3, 0.10  # IoU 0.3: the crop needs the face found, not AFW's box convention


def scale_shift(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Least-squares s, t with s * source + t ~ target for (N, 2) points -> (s, t (2,), RMS residual)."""
    src, dst = source - source.mean(0), target - target.mean(0)
    s = float((src * dst).sum() / (src * src).sum())
    t = target.mean(0) - s * source.mean(0)
    return s, t, float(np.sqrt(((s * source + t - target) ** 2).sum(1).mean()))


def mosaic_truths(photos: list[dict], faces_68: dict[str, np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per photo, (box (4,), 68 points (68, 2)) of every face with five points: its HELEN face is the one whose
    five points map onto the label's with a residual under 1% of their eye distance."""
    from facekit.landmarks import five_from_ibug68

    names = sorted(faces_68)
    fives = np.stack([five_from_ibug68(faces_68[n]) for n in names])
    truths = []
    for photo in photos:
        found = []
        for box, five in zip(photo["boxes_xyxy"], photo["landmarks_px"]):
            if not np.isfinite(five).all() or (five < 0).all():
                continue
            fits = [scale_shift(f, five) for f in fives]
            best = int(np.argmin([r for _, _, r in fits]))
            s, t, residual = fits[best]
            if residual > 0.01 * np.linalg.norm(five[1] - five[0]):
                raise ValueError(f"a face of a mosaic matches none of the {len(names)} HELEN faces (residual "
                                 f"{residual:.2f} px): were the mosaics made from another split?")
            found.append((box, s * faces_68[names[best]] + t))
        truths.append(found)
    return truths


def pipeline_nme(pipeline, photos: list[dict], truths: list, landmarks) -> tuple[np.ndarray, int]:
    """(NME of every found face, faces with truth) for a FacePipeline (or None: crop each true extent)."""
    from facekit.alignment.metrics import nme_per_sample
    from facekit.boxes import box_iou
    from facekit.geometry import landmark_box_xyxy

    errors, total = [], 0
    for photo, faces in zip(photos, truths):
        total += len(faces)
        if not faces:
            continue
        true_points = np.stack([points for _, points in faces])
        if pipeline is None:
            predicted = landmarks.predict(photo["image"], np.stack([landmark_box_xyxy(p) for p in true_points]),
                                          color="rgb")
            errors += list(nme_per_sample(predicted, true_points, landmarks.scheme))
            continue
        result = pipeline(photo["image"], color="rgb")
        keep = result.scores >= SCORE
        if not keep.any():
            continue
        overlap = box_iou(np.stack([box for box, _ in faces]), result.boxes_xyxy[keep])
        for k, row in enumerate(overlap):
            if row.max() >= MATCH_IOU:
                predicted = result.landmarks_px[keep][int(row.argmax())]
                errors += list(nme_per_sample(predicted[None], true_points[k:k + 1], landmarks.scheme))
    return np.asarray(errors), total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--landmarks", required=True, help="a 68-point landmark .tflite not trained on the held-out faces")
    p.add_argument("--dbface", nargs="*", default=[], help="DBFace .tflite exports to feed the pipeline")
    p.add_argument("--refiner", help="a five-point refiner .tflite: adds each DBFace export with refined points")
    p.add_argument("--refiner-passes", type=int, default=2)
    p.add_argument("--mosaics", default=MOSAICS)
    p.add_argument("--val-list", default=VAL_LIST, help="the held-out HELEN images the mosaics were made from")
    p.add_argument("--no-blazeface", action="store_true")
    p.add_argument("--no-mtcnn", action="store_true")
    p.add_argument("--mtcnn-export", default=os.path.join("runs", "frontier", "models", "mtcnn_package"),
                   help="the mtcnn package's weights exported by benchmarks/detector_frontier.py")
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    from detector_frontier import MTCNN_THRESHOLDS, make_detector, read_photos

    for path in (args.landmarks, args.mosaics, args.val_list, *args.dbface):
        if not os.path.exists(path):
            print(f"error: {path}: no such file or folder", file=sys.stderr)
            return 2
    from facekit.infer.pipeline import FacePipeline
    from facekit.infer.runtime import LandmarkPredictor
    from facekit.records.datasets.pts import read_pts

    landmarks = LandmarkPredictor(args.landmarks)
    if landmarks.scheme.name != "ibug68":
        print(f"error: {args.landmarks} predicts {landmarks.scheme.name}, not 68 points", file=sys.stderr)
        return 2
    helen = os.path.join(SHARED, "ibug68", "helen_train")
    faces_68 = {name: read_pts(os.path.join(helen, name[:-4] + ".pts")) - 1.0  # .pts are 1-based
                for name in open(args.val_list).read().split()}
    photos = read_photos(os.path.join(args.mosaics, "label.txt"), os.path.join(args.mosaics, "images"))
    try:
        truths = mosaic_truths(photos, faces_68)
    except ValueError as error:
        print(f"error: {args.mosaics}: {error}", file=sys.stderr)
        return 2
    points = [] if args.no_blazeface else [{"name": "BlazeFace full range", "kind": "blazeface",
                                            "model": "blazeface-full"}]
    if not args.no_mtcnn:
        points.append({"name": "mtcnn package, min face 20", "kind": "mtcnn", "path": args.mtcnn_export,
                       "min_face": 20})
    for path in args.dbface:
        name = os.path.relpath(path)
        points.append({"name": name, "kind": "dbface", "path": path})
        if args.refiner:
            points.append({"name": f"{name} + refiner x{args.refiner_passes}", "kind": "dbface", "path": path,
                           "refiner": args.refiner, "passes": args.refiner_passes})
    print(f"68-point NME (inter-ocular) of {args.landmarks} in the pipeline, {len(photos)} mosaics, "
          f"{sum(map(len, truths))} faces with points (MTCNN thresholds {MTCNN_THRESHOLDS}):")
    print(f"| crops from | found | NME mean | median | > {FAILURE_NME} |\n|---|---|---|---|---|")
    rows = [("true boxes", None)] + [(pt["name"], FacePipeline(make_detector(pt, None, SCORE), landmarks))
                                     for pt in points]
    for name, pipeline in rows:
        errors, total = pipeline_nme(pipeline, photos, truths, landmarks)
        cells = (f"{errors.mean():.4f} | {np.median(errors):.4f} | {np.mean(errors > FAILURE_NME):.1%}"
                 if len(errors) else "- | - | -")
        print(f"| {name} | {len(errors)}/{total} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
