"""Detect -> align on video: frames per second with the detector on every frame vs tracking by landmarks.

    python benchmarks/pipeline_speed.py --landmarks runs/pfld/export/pfld_fp32.tflite [--detector mtcnn[:DIR]]
        [--frames 150] [--redetect-every 10 30] [--threads 2] [--repeats 3]

The clip: 640x480 frames cut from one HELEN-train photo (../shared/data, one annotated face; a noise image
when the data is absent) by a window that drifts and sways across it, so the face moves about 4 px a frame.
Every mode runs facekit.infer.pipeline.FacePipeline with the same LiteRT models: `detect every frame` is
redetect_every=1; each `tracking` mode re-runs the detector every N frames (--redetect-every) or when a face is
lost. Reported:
median frames per second over --repeats passes, the ratio, how many frames ran the detector, and how far the
tracked points are from the detect-every-frame points (median and 95th percentile px over the frames where both
found the face). The detector defaults to the `mtcnn` package's weights exported to runs/mtcnn_export
(python freeze/export.py --mtcnn package).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import cv2
import numpy as np

HELEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ibug68",
                     "helen_train")
SIZE_WH = (640, 480)


def make_clip(frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """BGR frames (480, 640, 3) from a moving window over one photo (its face about 160 px tall), and the face's
    centre in each frame (frames, 2). The photo is padded with its mean colour, so no mirrored copy of the face
    enters the frame."""
    photos = sorted(glob.glob(os.path.join(HELEN, "*.jpg")))
    if photos:
        photo = cv2.imread(photos[0])
        points = np.loadtxt(photos[0][:-4] + ".pts", comments=("version", "n_points", "{", "}"))
        scale = 160 / (points[:, 1].max() - points[:, 1].min())
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        centre = points.mean(axis=0) * scale
    else:
        photo = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), np.uint8)
        centre = np.array([600.0, 450.0])
    pad = 400  # room for the window to move past the photo's edges
    mean = [float(v) for v in photo.reshape(-1, 3).mean(axis=0)]
    photo = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=mean)
    clip, centres = [], []
    for k in range(frames):
        t = k / 30
        offset = np.array([120 * np.sin(2 * np.pi * t / 5), 60 * np.sin(2 * np.pi * t / 3)])
        x, y = (centre + pad + offset - np.array(SIZE_WH) / 2).astype(int)
        clip.append(np.ascontiguousarray(photo[y:y + SIZE_WH[1], x:x + SIZE_WH[0]]))
        centres.append(centre + pad - (x, y))
    return clip, np.array(centres)


def the_face(faces, centre) -> np.ndarray | None:
    """The landmarks (K, 2) of the face nearest the clip's face centre, or None when none is within 80 px."""
    if not len(faces):
        return None
    distance = np.linalg.norm(faces.landmarks_px.mean(axis=1) - centre, axis=-1)
    return faces.landmarks_px[int(np.argmin(distance))] if distance.min() < 80 else None


def run_clip(pipeline, clip) -> tuple[float, list]:
    pipeline.reset()
    start, results = time.perf_counter(), []
    for k, frame in enumerate(clip):
        results.append(pipeline.track(frame, k / 30, color="bgr"))
    return time.perf_counter() - start, results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--landmarks", required=True, help="exported landmark .tflite (with its .json)")
    p.add_argument("--detector", default="mtcnn", help="mtcnn[:DIR] or dbface:FILE.tflite")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--redetect-every", type=int, nargs="+", default=[10, 30],
                   help="tracking modes to time: the detector runs every N frames (and when a face is lost)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from facekit.infer.pipeline import FacePipeline
    from facekit.infer.runtime import LandmarkPredictor
    from freeze.predict import make_detector

    clip, centres = make_clip(args.frames)
    detector = make_detector(args.detector, args.threads)
    landmarks = LandmarkPredictor(args.landmarks, args.threads)
    rows, outputs = {}, {}
    modes = [("detect every frame", 1)] + [(f"tracking (detect every {n})", n) for n in args.redetect_every]
    for name, every in modes:
        pipeline = FacePipeline(detector, landmarks, redetect_every=every)
        timings = []
        for _ in range(args.repeats):
            seconds, results = run_clip(pipeline, clip)
            timings.append(seconds)
        rows[name] = (len(clip) / float(np.median(timings)), sum(r.detected for r in results))
        outputs[name] = results
    first = next(iter(rows.values()))[0]
    print(f"{len(clip)} frames of {SIZE_WH[0]}x{SIZE_WH[1]}, detector {args.detector}, landmarks "
          f"{os.path.basename(args.landmarks)}, {args.threads} threads, median of {args.repeats} passes\n")
    print(f"{'mode':<32}{'fps':>8}{'ratio':>8}{'detector runs':>15}{'gap px median':>15}{'p95':>7}{'frames':>8}")
    base = [the_face(faces, c) for faces, c in zip(outputs[modes[0][0]], centres)]
    for name, (fps, runs) in rows.items():
        mine = [the_face(faces, c) for faces, c in zip(outputs[name], centres)]
        gaps = [np.linalg.norm(t - b, axis=-1).mean() for b, t in zip(base, mine) if b is not None and t is not None]
        gap = f"{np.median(gaps):>15.2f}{np.percentile(gaps, 95):>7.2f}{len(gaps):>8}" if gaps else ""
        print(f"{name:<32}{fps:>8.1f}{fps / first:>8.2f}{runs:>15}{gap}")
    print("\ngap: mean distance of the face's points from the detect-every-frame points (frames where both found "
          "it); detecting every N frames bounds the speed-up by N")
    return 0


if __name__ == "__main__":
    sys.exit(main())
