"""DBFace trained here from scratch on the shared training faces, scored once on the 185 AFW photos.

    python benchmarks/dbface_accuracy.py [--model dbface_small] [--minutes 90] [--root runs/dbface_accuracy]
                                         [--name RUN] [--profiled DIR] [--set KEY=VALUE ...]

1. Converts (--task detection) every real training source in ../shared/data that is not AFW: CMU+MIT photos,
   the WIDER FACE subset, HELEN-train crops, MTFL crops and the face-free backgrounds. Held out for validation
   (the best checkpoint), seeded: 20 CMU+MIT photos and 100 HELEN-train faces, the latter tiled four to a
   640 x 640 photo at AFW's face sizes (32-180 px; facekit.detection.data.write_mosaic_photos), because the
   other sources' faces are far smaller than AFW's (the WIDER subset's median face is 17 px) and a validation
   AP on them does not track AFW. 20 WIDER subset photos are held out too, as the crowd validation set
   (ROOT/records/wider_val: benchmarks/detector_frontier.py scores it; it does not pick the checkpoint).
   With --profiled DIR (face profiling of HELEN train, stage 1b), the training faces' views turned 30 degrees or
   more join the training folders, and 25 mosaics of the held-out faces' turned views join the validation photos.
2. Trains ROOT/RUN (RUN: --name, default the model's name) with the model's config and train.max_minutes =
   --minutes (rerunning resumes an interrupted run; --set train.init_weights=ROOT/OTHER continues a finished
   run's weights under a new schedule).
3. Evaluates the best checkpoint on AFW (training/evaluate_detection.py, Keras, at the letterbox the run's
   validation picked, score >= 0.05, NMS 0.4): AP@0.5 and five-point NME on matched faces, written to
   ROOT/RUN/afw.json with the worst photos drawn in ROOT/RUN/afw_worst.png.
The AFW photos (and the ibug68/afw crops cut from them) are never trained or tuned on.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
HELD_OUT = {"cmu_mit": 20, "helen_train": 100, "wider_subset": 20}
MOSAIC_PHOTOS = 25  # 100 held-out HELEN faces, four to a photo


def convert(args: list[str]) -> None:
    """Run the detection converter, unless the --output folder already holds a finished conversion (reused)."""
    output = args[args.index("--output") + 1]
    if os.path.isfile(os.path.join(output, "manifest.json")):
        print(f"{output}: reusing the finished conversion there")
        return
    subprocess.run([sys.executable, "-m", "tfrecords_tools.convert", "--task", "detection", *args], check=True)


def split_lists(root: str, name: str, paths: list[str], held_out: int) -> tuple[str, str]:
    """Seeded train / validation lists of image paths, written under root/splits -> (train list, val list)."""
    held = set(np.random.default_rng(0).choice(sorted(paths), held_out, replace=False))
    files = []
    for split, chosen in (("train", [p for p in paths if p not in held]), ("val", sorted(held))):
        files.append(os.path.join(root, "splits", f"{name}_{split}.txt"))
        with open(files[-1], "w") as f:
            f.write("\n".join(chosen) + "\n")
    return files[0], files[1]


def prepare_records(root: str) -> tuple[list[str], list[str]]:
    """Detection records of the shared training set under root: (training folders, validation folders)."""
    from facekit.detection.data import write_mosaic_photos
    from facekit.records.datasets.wider import read_wider_annotations

    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    train = os.path.join(SHARED, "detection_train")
    cmu = (f"{train}/cmu_mit/images", f"{train}/cmu_mit/label.txt")
    fit, val = split_lists(root, "cmu_mit", [i.path for i in read_wider_annotations(cmu[1])], HELD_OUT["cmu_mit"])
    for name, listing in (("cmu_mit_train", fit), ("cmu_mit_val", val)):
        convert(["--format", "retinaface", "--input", cmu[0], "--annotations", cmu[1], "--output",
                 os.path.join(root, name), "--split-list", listing])
    helen = os.path.join(SHARED, "ibug68", "helen_train")
    names = sorted(f for f in os.listdir(helen) if f.endswith(".jpg"))
    fit, val = split_lists(root, "helen_train", names, HELD_OUT["helen_train"])
    for name, listing in (("helen_train", fit), ("helen_val_faces", val)):
        convert(["--format", "ibug68", "--input", helen, "--output", os.path.join(root, name), "--split-list", listing])
    photos = os.path.join(root, "helen_val_mosaics_photos")
    if not os.path.isfile(os.path.join(photos, "label.txt")):
        write_mosaic_photos([os.path.join(root, "helen_val_faces")], photos, MOSAIC_PHOTOS)
    convert(["--format", "retinaface", "--input", os.path.join(photos, "images"), "--annotations",
             os.path.join(photos, "label.txt"), "--output", os.path.join(root, "helen_val_mosaics")])
    wider = f"{train}/wider_val_subset"
    gt = f"{wider}/bbx_gt.txt"
    fit, val = split_lists(root, "wider_subset", [i.path for i in read_wider_annotations(gt)], HELD_OUT["wider_subset"])
    for name, listing in (("wider_train", fit), ("wider_val", val)):
        convert(["--format", "widerface", "--input", f"{wider}/images", "--annotations", gt, "--output",
                 os.path.join(root, name), "--split-list", listing])
    for name, fmt, folder in (("mtfl", "mtfl", "mtfl_train"), ("backgrounds", "images", "detection_train/backgrounds")):
        convert(["--format", fmt, "--input", os.path.join(SHARED, folder), "--output", os.path.join(root, name)])
    train_dirs = [os.path.join(root, n) for n in ("cmu_mit_train", "wider_train", "helen_train", "mtfl",
                                                 "backgrounds")]
    return train_dirs, [os.path.join(root, "cmu_mit_val"), os.path.join(root, "helen_val_mosaics")]


def prepare_turned_records(root: str, profiled: str) -> tuple[str, str]:
    """Detection records of HELEN train's views turned 30 degrees or more (a tfrecords_tools.profile folder):
    (the training faces' views, mosaics of the held-out faces' views for validation), under root."""
    from large_pose_accuracy import LARGE_YAW, view_names, write_list

    from facekit.detection.data import write_mosaic_photos

    folders = []
    for split in ("train", "val"):
        faces = {n[:-4] for n in open(os.path.join(root, "splits", f"helen_train_{split}.txt")).read().split()}
        listing = os.path.join(root, "splits", f"helen_turned_{split}_views.txt")
        if not os.path.isfile(listing):
            write_list(listing, view_names(profiled, faces, LARGE_YAW))
        folders.append(os.path.join(root, f"helen_turned_{split}" + ("_views" if split == "val" else "")))
        convert(["--format", "300wlp", "--input", profiled, "--output", folders[-1],  # pt2d: the visible outline
                 "--split-list", listing])
    photos = os.path.join(root, "helen_turned_val_mosaics_photos")
    if not os.path.isfile(os.path.join(photos, "label.txt")):
        write_mosaic_photos([folders[1]], photos, MOSAIC_PHOTOS)
    mosaics = os.path.join(root, "helen_turned_val_mosaics")
    convert(["--format", "retinaface", "--input", os.path.join(photos, "images"), "--annotations",
             os.path.join(photos, "label.txt"), "--output", mosaics])
    return folders[0], mosaics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dbface_small")
    p.add_argument("--minutes", type=float, default=90.0)
    p.add_argument("--root", default=os.path.join("runs", "dbface_accuracy"))
    p.add_argument("--name", help="run folder under ROOT (default: the model's name)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for train.py")
    p.add_argument("--profiled", help="a tfrecords_tools.profile folder of HELEN train (benchmarks/"
                   "large_pose_accuracy.py makes runs/large_pose/profiled/helen_train): adds the training faces' views "
                   "turned 30 degrees or more as a training folder, and mosaics of the held-out faces' turned views "
                   "to the validation photos")
    p.add_argument("--prepare-only", action="store_true", help="convert the records and stop")
    args = p.parse_args(argv)
    if not os.path.isdir(SHARED):
        print(f"error: {SHARED} is absent; this benchmark needs the shared research data", file=sys.stderr)
        return 2
    train_dirs, val_dirs = prepare_records(os.path.join(args.root, "records"))
    if args.profiled:
        turned, turned_val = prepare_turned_records(os.path.join(args.root, "records"), args.profiled)
        train_dirs, val_dirs = train_dirs + [turned], val_dirs + [turned_val]
    run = os.path.join(args.root, args.name or args.model)
    if args.prepare_only:
        return 0
    subprocess.run([sys.executable, "training/train.py", "--model", args.model, "--data", *train_dirs,
                    "--val-data", *val_dirs, "--out", run, "--set", f"train.max_minutes={args.minutes}", *args.set],
                   check=True)
    afw = os.path.join(SHARED, "afw_detection")
    from facekit.files import read_json, read_yaml

    size = read_json(os.path.join(run, "metrics.json")).get("letterbox") or read_yaml(
        os.path.join(run, "config.yaml"))["train"]["val_size"]  # the letterbox its validation picked
    subprocess.run([sys.executable, "training/evaluate_detection.py", "--detector", "dbface", "--run", run,
                    "--size", str(size),
                    "--gt", os.path.join(afw, "label.txt"), "--images", os.path.join(afw, "images"),
                    "--json", os.path.join(run, "afw.json"), "--grid", os.path.join(run, "afw_worst.png")],
                   check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
