"""DBFace trained here from scratch on the shared training faces, scored once on the 185 AFW photos.

    python benchmarks/dbface_accuracy.py [--model dbface_small] [--minutes 90] [--root runs/dbface_accuracy]

1. Converts (--task detection) every real training source in ../shared/data that is not AFW: CMU+MIT photos and
   the WIDER FACE subset (20 and 12 photos held out, seeded, for validation and the best checkpoint), HELEN-train
   crops, MTFL crops and the face-free backgrounds.
2. Trains with the model's config and train.max_minutes = --minutes (rerunning resumes an interrupted run).
3. Evaluates the best checkpoint on AFW (training/evaluate_detection.py, Keras, letterbox 640, score >= 0.05,
   NMS 0.4): AP@0.5 and five-point NME on matched faces, written to ROOT/afw.json with the worst photos drawn.
The AFW photos (and the ibug68/afw crops cut from them) are never trained or tuned on.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
HELD_OUT = {"cmu_mit": 20, "wider_subset": 12}


def convert(args: list[str]) -> None:
    """Run the detection converter, unless the --output folder already holds a finished conversion (reused)."""
    output = args[args.index("--output") + 1]
    if os.path.isfile(os.path.join(output, "manifest.json")):
        print(f"{output}: reusing the finished conversion there")
        return
    subprocess.run([sys.executable, "-m", "tfrecords_tools.convert", "--task", "detection", *args], check=True)


def prepare_records(root: str) -> tuple[list[str], list[str]]:
    """Detection records of the shared training set under root: (training folders, validation folders)."""
    from facekit.datasets.wider import read_wider_annotations

    train = os.path.join(SHARED, "detection_train")
    sources = {"cmu_mit": ("retinaface", f"{train}/cmu_mit/images", f"{train}/cmu_mit/label.txt"),
               "wider_subset": ("widerface", f"{train}/wider_val_subset/images", f"{train}/wider_val_subset/bbx_gt.txt")}
    rng = np.random.default_rng(0)
    train_dirs, val_dirs = [], []
    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    for name, (fmt, images, labels) in sources.items():
        paths = [item.path for item in read_wider_annotations(labels)]
        held = set(rng.choice(paths, HELD_OUT[name], replace=False))
        for split, chosen in (("train", [p for p in paths if p not in held]), ("val", sorted(held))):
            listing = os.path.join(root, "splits", f"{name}_{split}.txt")
            with open(listing, "w") as f:
                f.write("\n".join(chosen) + "\n")
            out = os.path.join(root, f"{name}_{split}")
            convert(["--format", fmt, "--input", images, "--annotations", labels, "--output", out,
                     "--split-list", listing])
            (train_dirs if split == "train" else val_dirs).append(out)
    for name, fmt, folder in (("helen_train", "ibug68", "ibug68/helen_train"), ("mtfl", "mtfl", "mtfl_train"),
                              ("backgrounds", "images", "detection_train/backgrounds")):
        out = os.path.join(root, name)
        convert(["--format", fmt, "--input", os.path.join(SHARED, folder), "--output", out])
        train_dirs.append(out)
    return train_dirs, val_dirs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dbface_small")
    p.add_argument("--minutes", type=float, default=90.0)
    p.add_argument("--root", default=os.path.join("runs", "dbface_accuracy"))
    args = p.parse_args(argv)
    if not os.path.isdir(SHARED):
        print(f"error: {SHARED} is absent; this benchmark needs the shared research data", file=sys.stderr)
        return 2
    train_dirs, val_dirs = prepare_records(os.path.join(args.root, "records"))
    run = os.path.join(args.root, args.model)
    subprocess.run([sys.executable, "training/train.py", "--model", args.model, "--data", *train_dirs,
                    "--val-data", *val_dirs, "--out", run, "--set", f"train.max_minutes={args.minutes}"], check=True)
    afw = os.path.join(SHARED, "afw_detection")
    subprocess.run([sys.executable, "training/evaluate_detection.py", "--detector", "dbface", "--run", run,
                    "--gt", os.path.join(afw, "label.txt"), "--images", os.path.join(afw, "images"),
                    "--json", os.path.join(args.root, "afw.json"),
                    "--grid", os.path.join(args.root, "afw_worst.png")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
