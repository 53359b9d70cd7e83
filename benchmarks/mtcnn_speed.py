"""MTCNN speed and peak memory: ours (Keras networks, and LiteRT on the exported .tflite files) against the
`mtcnn` 1.0.0 package, on the same images: 640x480, 1024x768 and a 2048x1150 crowd (a mosaic of AFW photos).

    python benchmarks/mtcnn_speed.py [--repeats 10] [--threads 2]

Each (detector, image) pair runs in a fresh process: median ms per image over `repeats` runs after 2 warm-up
runs, and the process's peak resident memory (ru_maxrss, TensorFlow's own footprint included where it is loaded).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

AFW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "afw_detection")
DETECTORS = ("package", "keras", "tflite")


def test_images(out_dir: str) -> dict[str, str]:
    """Write the three RGB test images as .npy files: real AFW photos when ../shared is present, else noise."""
    photos = sorted(glob.glob(os.path.join(AFW, "images", "*", "*.jpg")))
    rng = np.random.default_rng(0)

    def photo(k: int):
        if photos:
            return cv2.cvtColor(cv2.imread(photos[k % len(photos)]), cv2.COLOR_BGR2RGB)
        return rng.integers(0, 255, (480, 640, 3), np.uint8)

    crowd = np.concatenate([np.concatenate([cv2.resize(photo(8 * r + c), (256, 230)) for c in range(8)], axis=1)
                            for r in range(5)], axis=0)
    images = {"640x480": cv2.resize(photo(0), (640, 480)), "1024x768": cv2.resize(photo(1), (1024, 768)),
              "2048x1150 crowd": crowd}
    paths = {}
    for name, image in images.items():
        paths[name] = os.path.join(out_dir, name.split()[0] + ".npy")
        np.save(paths[name], np.ascontiguousarray(image))
    return paths


def child(detector: str, image_path: str, repeats: int, threads: int, export_dir: str) -> None:
    image = np.load(image_path)
    if detector == "package":
        from mtcnn import MTCNN as Package

        package = Package()
        run = lambda: len(package.detect_faces(image.copy(), threshold_onet=0.7))  # noqa: E731
    elif detector == "keras":
        import models  # noqa: F401
        from facekit.detection.mtcnn.networks import keras_cascade
        from models.mtcnn import imported_networks

        cascade = keras_cascade(imported_networks())
        run = lambda: len(cascade.detect(image, color="rgb"))  # noqa: E731
    else:
        from facekit.infer.mtcnn import tflite_cascade

        cascade = tflite_cascade(export_dir, num_threads=threads)
        run = lambda: len(cascade.detect(image, color="rgb"))  # noqa: E731
    faces = [run() for _ in range(2)][-1]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1000 * float(np.median(times)), "faces": faces,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.threads, args.export_dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "freeze/export.py", "--mtcnn", "package", "--out", tmp], check=True,
                       capture_output=True)
        results = {}
        for name, path in test_images(tmp).items():
            for detector in DETECTORS:
                out = subprocess.run([sys.executable, __file__, "--child", detector, path, str(args.repeats),
                                      "--threads", str(args.threads), "--export-dir", tmp],
                                     capture_output=True, text=True, check=True)
                results[name, detector] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"  {name} {detector}: {results[name, detector]}", file=sys.stderr)
    print(f"{'image':<16} {'detector':<9} {'faces':>5} {'ms/image':>9} {'x package':>10} {'peak MB':>8}")
    for (name, detector), r in results.items():
        ratio = results[name, "package"]["ms"] / r["ms"]
        print(f"{name:<16} {detector:<9} {r['faces']:>5} {r['ms']:>9.1f} {ratio:>10.2f} {r['peak_mb']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
