"""Face profiling speed on one core: fits per second and profiled views per second on HELEN-train faces, against
the issue's bar of 5 views per second per core, with the fit's reprojection error.

    python benchmarks/profile_speed.py [--faces 30] [--yaw-step 5] [--repeats 3]

Median of --repeats passes over the same faces, in this one process (OpenCV limited to one thread). A view is one
rendered yaw (the face's own view, which is a copy, is not counted).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=30)
    p.add_argument("--yaw-step", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    folder = os.path.join(SHARED, "ibug68", "helen_train")
    if not os.path.isdir(folder):
        print(f"error: {folder} is absent; this benchmark needs the shared research data", file=sys.stderr)
        return 2
    from facekit.profiling.fit import fit_points, load_face_model
    from facekit.profiling.profile import profile_face
    from facekit.records.datasets import ReaderOptions, get_format

    cv2.setNumThreads(1)
    model = load_face_model(os.path.join(SHARED, "face3d", "bfm3ddfa_grid64.npz"))
    reader = get_format("ibug68")
    samples = [reader.load_sample(folder, item, ReaderOptions())
               for item in reader.list_items(folder, ReaderOptions())[:args.faces]]
    images = [cv2.imread(s.image_path) for s in samples]
    fit_rates, view_rates, errors = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fits = [fit_points(s.points_px, model) for s in samples]
        fit_rates.append(len(samples) / (time.perf_counter() - start))
        errors = [f.error.mean() / np.linalg.norm(s.points_px[36] - s.points_px[45]) for f, s in zip(fits, samples)]
        start, views = time.perf_counter(), 0
        for image, sample in zip(images, samples):
            views += len(profile_face(image, sample.points_px, model, args.yaw_step)) - 1
        view_rates.append(views / (time.perf_counter() - start))
    print(f"{len(samples)} HELEN-train faces ({images[0].shape[1]}x{images[0].shape[0]} px crops), "
          f"{args.yaw_step:g}-degree steps, median of {args.repeats}, 1 core")
    print("| measure | value | bar | ratio |")
    print("|---|---|---|---|")
    print(f"| fits per second | {np.median(fit_rates):.1f} | | |")
    print(f"| profiled views per second (fit + render) | {np.median(view_rates):.1f} | 5 | "
          f"{np.median(view_rates) / 5:.2f} |")
    print(f"| median fit error, % of the outer-eye-corner distance | {100 * np.median(errors):.2f} | 3.5 | "
          f"{np.median(errors) / 0.035:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
