"""MTCNN trained here from scratch, stage by stage, on the shared training faces; scored once on the AFW photos.

    python benchmarks/mtcnn_train.py [--root runs/mtcnn_accuracy] [--records DIR] [--workers 2]

1. Detection records of every real training source in ../shared/data that is not AFW (as benchmarks/
   dbface_accuracy.py: CMU+MIT and the WIDER subset with 20 and 12 photos held out for validation, HELEN-train
   crops, MTFL crops, face-free backgrounds). A --records folder holding them already is reused.
2. For P-Net, R-Net, O-Net in turn: cut the stage's samples from the training and the validation records
   (R-Net and O-Net mine hard examples with the stages trained before), then train it with its config
   (training/configs/mtcnn_*.yaml: 20 + 25 + 45 minutes of the 90-minute budget).
3. Evaluates the trained cascade and the `mtcnn` package's published weights on the 185 AFW photos
   (training/evaluate_detection.py: AP@0.5 and five-point NME on matched faces), ROOT/afw.json and
   ROOT/afw_package.json, and prints the minutes each step took.
Every step resumes: rerunning after an interruption carries on where it stopped.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from dbface_accuracy import SHARED, prepare_records

from facekit.files import read_json

STAGES = ("pnet", "rnet", "onet")


def run(*args: str) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, *args], check=True)
    return time.monotonic() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.path.join("runs", "mtcnn_accuracy"))
    p.add_argument("--records", help="detection record folder (default: ROOT/records)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    if not os.path.isdir(SHARED):
        print(f"error: {SHARED} is absent; this benchmark needs the shared research data", file=sys.stderr)
        return 2
    train_dirs, val_dirs = prepare_records(args.records or os.path.join(args.root, "records"))
    seconds, runs = {}, []
    for stage in STAGES:
        samples = {split: os.path.join(args.root, "samples", f"{stage}_{split}") for split in ("train", "val")}
        for split, dirs in (("train", train_dirs), ("val", val_dirs)):
            # R-Net and O-Net regress the points that the cascade outputs: 10 landmark windows a face, not 4
            previous = ["--previous", *runs, "--landmark-candidates", "10"] if runs else []
            seconds[f"{stage} samples {split}"] = run(
                "-m", "tfrecords_tools.mtcnn_samples", "--stage", stage, "--data", *dirs, "--out", samples[split],
                "--workers", str(args.workers), *previous)
        runs.append(os.path.join(args.root, f"mtcnn_{stage}"))
        seconds[f"{stage} training"] = run("training/train.py", "--model", f"mtcnn_{stage}", "--data",
                                           samples["train"], "--val-data", samples["val"], "--out", runs[-1])
    afw = os.path.join(SHARED, "afw_detection")
    for weights, name in ((runs, "afw.json"), (["package"], "afw_package.json")):
        seconds[f"AFW {name}"] = run("training/evaluate_detection.py", "--detector", "mtcnn", "--weights", *weights,
                                     "--gt", os.path.join(afw, "label.txt"), "--images", os.path.join(afw, "images"),
                                     "--json", os.path.join(args.root, name))
    train_seconds = sum(read_json(os.path.join(r, "metrics.json"))["train_seconds"] for r in runs)
    print(f"\n{'step':<24}{'minutes':>9}")
    for step, value in seconds.items():
        print(f"{step:<24}{value / 60:>9.1f}")
    print(f"{'training, all stages':<24}{train_seconds / 60:>9.1f}")
    for name in ("afw.json", "afw_package.json"):
        result = read_json(os.path.join(args.root, name))
        print(f"{name}: AP@0.5 {result['ap']:.4f}, five-point NME {result['five_point_nme']:.4f} "
              f"on {result['nme_faces']} matched faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
