"""A five-point refiner trained here: `senet_small` (SE-ResNet at half widths, 96 px crops), exported to TFLite for
facekit.infer.pipeline.FivePointRefiner, which replaces a detector's five points with those of the refiner,
predicted on a crop of each detected box.

    python benchmarks/five_point_refiner.py [--points ibug68|five] [--size 96] [--minutes 20]
                                            [--root runs/five_point_refiner] [--profiled DIR] [--faces N]
                                            [--set KEY=VALUE ...]
    python benchmarks/detector_frontier.py --dbface RUN --refiner ROOT/ibug68_96/export/senet_small_fp32.tflite

1. Converts HELEN train, less the 100 faces benchmarks/dbface_accuracy.py holds out (the same seeded choice: they
   validate here and pick the best checkpoint), at --size px: --points ibug68 (default) keeps the 68 points and the
   refiner's five are derived from its 68 (eye centres, nose tip, mouth corners: the five points of AFW's detection
   truth); --points five keeps only those five and adds the 10,000 MTFL crops (five points of their own).
2. Trains senet_small with its config and train.max_minutes = --minutes (rerunning resumes).
3. Exports the best checkpoint to TFLite float32 and int8 (ROOT/POINTS_SIZE/export, with the runtime's sidecar) and
   prints each artifact's validation NME over the five points (normalised by the eye centres' distance, the
   detection NME's normaliser), on crops cut from the true landmarks; with --detector DBFACE.tflite, also the
   five points of that detector's matched faces on the validation mosaics (the same held-out faces, tiled four to
   a photo by benchmarks/dbface_accuracy.py), its own and refined from its boxes: the refiner's real input.
The AFW figure (matched faces of a detector, refined) comes from benchmarks/detector_frontier.py --refiner: AFW is
never trained or tuned on here.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
from dbface_accuracy import HELD_OUT, SHARED, split_lists

from facekit.files import read_json


def convert(args: list[str]) -> str:
    """Run the landmark converter unless --output already holds a finished conversion; -> the folder."""
    output = args[args.index("--output") + 1]
    if not os.path.isfile(os.path.join(output, "manifest.json")):
        subprocess.run([sys.executable, "-m", "tfrecords_tools.convert", *args], check=True)
    return output


def prepare_records(root: str, points: str, size: int, profiled: str | None = None,
                    faces: int | None = None) -> tuple[list[str], list[str]]:
    """(training folders, validation folders) of size px crops under root/records/POINTS_SIZE; with profiled (a
    tfrecords_tools.profile folder of HELEN train), the training faces' views turned 30 degrees or more are added;
    with faces, only that many of the training faces (a seeded choice) are kept."""
    from large_pose_accuracy import LARGE_YAW, view_names, write_list

    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    helen = os.path.join(SHARED, "ibug68", "helen_train")
    names = sorted(f for f in os.listdir(helen) if f.endswith(".jpg"))
    fit, val = split_lists(root, "helen_train", names, HELD_OUT["helen_train"])
    records = os.path.join(root, "records", f"{points}_{size}")
    fit_records = os.path.join(records, "helen_fit")
    if faces:
        chosen = np.random.default_rng(0).choice(open(fit).read().split(), faces, replace=False)
        fit = write_list(os.path.join(root, "splits", f"helen_train_fit_{faces}.txt"), chosen)
        fit_records = f"{fit_records}_{faces}"
    point_args = ["--image-size", str(size)] + (["--points", "five"] if points == "five" else [])
    helen_args = ["--format", "ibug68", "--input", helen, *point_args]
    train = [convert([*helen_args, "--output", fit_records, "--split-list", fit])]
    if profiled:  # issue 24's mixed recipe: the photos plus only their views turned 30 degrees or more
        views = os.path.join(root, "splits", "helen_train_turned_views.txt")
        if not os.path.isfile(views):
            write_list(views, view_names(profiled, {n[:-4] for n in open(fit).read().split()}, LARGE_YAW))
        train.append(convert(["--format", "300wlp", "--input", profiled, "--landmarks-source", "pts_2d", *point_args,
                              "--output", os.path.join(records, "helen_fit_turned"), "--split-list", views]))
    if points == "five":
        train.append(convert(["--format", "mtfl", "--input", os.path.join(SHARED, "mtfl_train"), "--image-size",
                              str(size), "--output", os.path.join(records, "mtfl")]))
    return train, [convert([*helen_args, "--output", os.path.join(records, "helen_val"), "--split-list", val])]


def five_point_nme(predicted: np.ndarray, truth: np.ndarray, scheme) -> float:
    """Mean NME of the five points of (N, K, 2) predictions against (N, K, 2) truths of a scheme, normalised by
    the distance of the eye centres (the detection NME's normaliser)."""
    from facekit.alignment.metrics import nme_per_sample
    from facekit.landmarks import FIVE, five_points

    def five(points):
        return np.stack([five_points(p, scheme) for p in points])

    return float(nme_per_sample(five(predicted), five(truth), FIVE).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", choices=("ibug68", "five"), default="ibug68",
                   help="train on HELEN's 68 points (five derived) or on five points (HELEN's and MTFL's)")
    p.add_argument("--size", type=int, default=96, help="crop side (records, model input and loss scale)")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget (wall clock)")
    p.add_argument("--root", default=os.path.join("runs", "five_point_refiner"))
    p.add_argument("--detector", help="a DBFace .tflite whose matched faces' five points to score, raw and refined")
    p.add_argument("--mosaics", default=os.path.join("runs", "dbface_accuracy", "records", "helen_val_mosaics_photos"),
                   help="benchmarks/dbface_accuracy.py's validation mosaics (label.txt and images/)")
    p.add_argument("--profiled", help="add the training faces' views turned 30 degrees or more from this "
                   "tfrecords_tools.profile folder of HELEN train (benchmarks/large_pose_accuracy.py makes "
                   "runs/large_pose/profiled/helen_train), drawn from |yaw| bins as in "
                   "training/configs/senet_profiled.yaml, the same steps as without (an epoch: the photos over the "
                   "batch); the run is POINTS_SIZE_turned")
    p.add_argument("--faces", type=int, help="train on only this many of the 770 training faces (a seeded choice), "
                   "at the same steps as all of them: the run is POINTS_SIZE_facesN (NME against training faces)")
    p.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. train.epochs=40")
    args = p.parse_args(argv)
    if args.faces and args.profiled:
        p.error("--faces and --profiled are separate measurements; give one")
    for need in ("ibug68/helen_train", "mtfl_train"):
        if not os.path.isdir(os.path.join(SHARED, need)):
            print(f"error: {os.path.join(SHARED, need)} is absent; this benchmark needs the shared data",
                  file=sys.stderr)
            return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "training"))
    import train

    import models  # noqa: F401
    from facekit.alignment import data
    from facekit.alignment.export import export_run, serving_model
    from facekit.config import load_config
    from facekit.export import ParityError, rebuild_float32
    from facekit.infer.runtime import run_tflite

    fit, val = prepare_records(args.root, args.points, args.size, args.profiled, args.faces)
    run = os.path.join(args.root, f"{args.points}_{args.size}" + ("_turned" if args.profiled else "") +
                       (f"_faces{args.faces}" if args.faces else ""))
    extra = []
    if args.faces or args.profiled:  # the steps an epoch of all the training photos alone takes
        configs = os.path.join(root, "training", "configs")
        batch = load_config(os.path.join(configs, "senet_small.yaml"), args.set).data.batch_size
        every_face = open(os.path.join(args.root, "splits", "helen_train_train.txt")).read().split()
        extra = [f"train.steps_per_epoch={len(every_face) // batch}"]
    if args.profiled:  # senet_profiled.yaml's yaw bins
        recipe = load_config(os.path.join(configs, "senet_profiled.yaml")).data
        extra += [f"data.yaw_bins={list(recipe.yaw_bins)}", f"data.yaw_weights={list(recipe.yaw_weights)}"]
    rc = train.main(["--model", "senet_small", "--data", *fit, "--val-data", *val, "--out", run,  # resumes or reuses
                     "--set", f"train.max_minutes={args.minutes}", f"model_args.input_size={args.size}",
                     f"loss.scale={args.size}", *extra, *args.set])
    if rc:
        return rc
    try:
        report = export_run(run, os.path.join(run, "export"), formats=("tflite_fp32", "tflite_int8"))
    except ParityError as error:  # the report is written; say what missed and show the figures anyway
        print(f"note: {error}")
        report = read_json(os.path.join(run, "export", "report.json"))
    metrics = read_json(os.path.join(run, "metrics.json"))
    network, codec, _, _ = rebuild_float32(run)
    scheme, model = data.record_scheme(val), serving_model(network, codec)
    faces = data.evaluation_arrays(val, network.input_shape[1])
    truth = faces["points_norm"] * network.input_shape[1]
    keras_nme = five_point_nme(model.predict_on_batch(faces["image"])["landmarks"], truth, scheme)
    print(f"senet_small refiner on {args.points} points: {metrics['epochs_run']} epochs, "
          f"{metrics['train_seconds'] / 60:.1f} min, {metrics['train_records']} training crops; five-point NME "
          f"(eye centres) of the {len(truth)} held-out HELEN faces, crops from the true landmarks:")
    print(f"| artifact | five-point NME | bytes |\n|---|---|---|\n| keras | {keras_nme:.4f} | |")
    for fmt, a in report["artifacts"].items():
        predicted = run_tflite(os.path.join(run, "export", a["path"]), faces["image"])
        print(f"| {fmt} | {five_point_nme(predicted, truth, scheme):.4f} | {a['bytes']:,} |")
    if args.detector:
        print(detector_table(args.detector, os.path.join(run, "export", "senet_small_fp32.tflite"), args.mosaics))
    return 0


def detector_table(detector_path: str, refiner_path: str, mosaics: str) -> str:
    """Five-point NME of a detector's matched faces on the validation mosaics, its own points and refined."""
    from detector_frontier import AP_SCORE, read_photos

    from facekit.detection.evaluation import matched_point_nme
    from facekit.infer.detector import FaceDetector
    from facekit.infer.pipeline import FivePointRefiner
    from facekit.infer.runtime import LandmarkPredictor

    photos = read_photos(os.path.join(mosaics, "label.txt"), os.path.join(mosaics, "images"))
    detector = FaceDetector(detector_path, score_threshold=AP_SCORE)
    lines = [f"five points of {os.path.basename(detector_path)}'s matched faces, {len(photos)} validation mosaics:",
             "| points | NME (faces) |", "|---|---|"]
    refiner = LandmarkPredictor(refiner_path)
    for name, finder in (("detector's own", detector), ("refined", FivePointRefiner(detector, refiner)),
                         *((f"refined, {n} passes", FivePointRefiner(detector, refiner, n)) for n in (2, 3))):
        found = [finder.detect(p["image"], color="rgb") for p in photos]
        nme, faces = matched_point_nme(found, [p["boxes_xyxy"] for p in photos], [p["landmarks_px"] for p in photos])
        lines.append(f"| {name} | {nme:.4f} ({faces}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
