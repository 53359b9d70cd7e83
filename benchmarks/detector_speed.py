"""Detector speed on LiteRT: a trained DBFace run (float32 and int8 at a 640x640 input, float32 at 1024x1024 and
at 2048x2048) next to our LiteRT MTCNN cascade (the `mtcnn` package's weights), on the images of
benchmarks/mtcnn_speed.py: 640x480, 1024x768 and a 2048x1150 crowd of AFW photos. Each cell prints the faces the
detector finds (score >= 0.3 for DBFace, thresholds 0.6/0.7/0.7 for MTCNN) beside its time: the cascade runs on
the full 2048 px crowd, so only the 2048 export sees the same small faces at the same resolution.

    python benchmarks/detector_speed.py --run runs/dbface_small [--repeats 10] [--threads 2]

Each (detector, image) cell runs in a fresh process: median ms per image over `repeats` runs after 2 warm-ups,
whole detect() calls (letterbox, network, threshold 0.3 and NMS for DBFace; pyramid and three stages for MTCNN).
DBFace's cost is fixed by its input size, not by the photo or its number of faces; the 1024 model sees the
1024x768 photo at full resolution, the 2048 model the crowd.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = (("dbface fp32 640", "fp32", 640), ("dbface int8 640", "int8", 640), ("dbface fp32 1024", "fp32", 1024),
            ("dbface fp32 2048", "fp32", 2048))


def child(model_path: str, image_path: str, repeats: int, threads: int) -> None:
    from facekit.infer.detector import FaceDetector

    image = np.load(image_path)
    detector = FaceDetector(model_path, threads)
    faces = [len(detector.detect(image, color="rgb")) for _ in range(2)][-1]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect(image, color="rgb")
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1000 * float(np.median(times)), "faces": faces}))


def run_json(command: list[str]) -> dict:
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a trained DBFace run folder")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.threads)
        return 0
    if not args.run:
        p.error("--run RUN is required")
    sys.path.insert(0, HERE)
    from mtcnn_speed import test_images

    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for name, mode, size in VARIANTS:
            out = os.path.join(tmp, f"{mode}_{size}")
            export = subprocess.run([sys.executable, "freeze/export.py", "--run", args.run, "--size", str(size),
                                     "--formats", f"tflite_{mode}", "--out", out], capture_output=True, text=True)
            written = [f for f in os.listdir(out) if f.endswith(".tflite")] if os.path.isdir(out) else []
            if not written:
                raise RuntimeError(f"export of {name} failed:\n{export.stderr[-2000:]}")
            if export.returncode:  # timing needs the file, not parity; say so beside the table
                failed = [line for line in export.stderr.splitlines() if "parity FAILED" in line]
                print(f"note: {name} is timed although its export missed parity: {'; '.join(failed)}",
                      file=sys.stderr)
            models[name] = os.path.join(out, written[0])
        subprocess.run([sys.executable, "freeze/export.py", "--mtcnn", "package", "--out", tmp], check=True,
                       capture_output=True)
        results = {}
        for image_name, path in test_images(tmp).items():
            results[image_name, "mtcnn (LiteRT)"] = run_json(
                [sys.executable, os.path.join(HERE, "mtcnn_speed.py"), "--child", "tflite", path, str(args.repeats),
                 "--threads", str(args.threads), "--export-dir", tmp])
            for name, model in models.items():
                results[image_name, name] = run_json([sys.executable, __file__, "--child", model, path,
                                                      str(args.repeats), "--threads", str(args.threads)])
            for detector in ["mtcnn (LiteRT)"] + list(models):
                print(f"  {image_name} {detector}: {results[image_name, detector]}", file=sys.stderr)
    print(f"{'image':<16} {'detector':<17} {'faces':>5} {'ms/image':>9} {'x mtcnn':>8}")
    for (image_name, detector), r in results.items():
        ratio = results[image_name, "mtcnn (LiteRT)"]["ms"] / r["ms"]
        print(f"{image_name:<16} {detector:<17} {r['faces']:>5} {r['ms']:>9.1f} {ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
