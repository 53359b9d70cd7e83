"""Detect -> align on video: frames per second with the detector on every frame vs tracking by landmarks, and how
close each mode's points are to each other and to the true points.

    python benchmarks/pipeline_speed.py --landmarks runs/pfld/export/pfld_fp32.tflite [--detector mtcnn[:DIR]]
        [--clips drift motion] [--frames 150] [--redetect-every 10 30] [--threads 2] [--repeats 3]

The clips (640x480, 30 frames a second) are drawn from HELEN-train photos that benchmarks/landmark_accuracy.py
and large_pose_accuracy.py hold out for validation (the first two names of that seeded list, printed), so a
landmark model trained by either has not seen them (../shared/data; noise images when it is absent):
  drift   one face, 160 px tall, carried by a window that drifts and sways across its photo (about 4 px a frame)
  motion  the same face turning in the image plane (+-20 degrees), zooming (0.75-1.3x) and drifting, and a second
          face (the second photo, 110 px tall) moving the other way
Every mode runs facekit.infer.pipeline.FacePipeline with the same LiteRT models: `detect every frame` is
redetect_every=1; each `tracking` mode re-runs the detector every N frames (--redetect-every) or when a face is
lost. Each mode runs one untimed warm-up pass, then --repeats timed passes, the modes taking turns in an order
reversed every other pass. Reported per clip: median frames per second, the ratio, how many frames ran the
detector, the gap of each mode's points to the detect-every-frame points (median, 95th percentile, face-frames
within 2 px and the largest, over face-frames where both found the face) and the error against the true points
(mean px over the face-frames it found, and how many it found). The detector defaults to the `mtcnn` package's
weights exported to runs/mtcnn_export (python freeze/export.py --mtcnn package).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELEN = os.path.join(os.path.dirname(ROOT), "shared", "data", "ibug68", "helen_train")
SIZE_WH = (640, 480)
FPS = 30


def held_out_faces(count: int = 2) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, BGR photo, 68 points (68, 2) 0-based px) of the first HELEN-train validation faces; noise photos
    with a made-up point layout when the shared data is absent."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from landmark_accuracy import helen_split_names

    if not os.path.isdir(HELEN):
        rng = np.random.default_rng(0)
        ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 68)), np.sin(np.linspace(0, 2 * np.pi, 68))], 1)
        return [(f"noise_{k}", rng.integers(0, 255, (900, 1200, 3), np.uint8), 600 + 80 * ring) for k in range(count)]
    faces = []
    for name in helen_split_names()[0][:count]:
        points = np.loadtxt(os.path.join(HELEN, name + ".pts"), comments=("version", "n_points", "{", "}")) - 1
        faces.append((name, cv2.imread(os.path.join(HELEN, name + ".jpg")), points))
    return faces


def face_motion(clip: str, k: int) -> list[tuple[np.ndarray, float, float, float]]:
    """(frame position of the face centre (2,), angle degrees, scale, face height px) of each face in frame k."""
    t, middle = k / FPS, np.array(SIZE_WH, float) / 2
    sway = np.array([120 * np.sin(2 * np.pi * t / 5), 60 * np.sin(2 * np.pi * t / 3)])
    if clip == "drift":
        return [(middle - sway, 0.0, 1.0, 160.0)]
    return [(middle + (-150, 0) - sway * 0.8, 20 * np.sin(2 * np.pi * t / 4),
             1.025 + 0.275 * np.sin(2 * np.pi * t / 6), 160.0),
            (middle + (170, 40) + sway * 0.6, -10 * np.sin(2 * np.pi * t / 3), 1.0, 110.0)]


def make_clip(clip: str, frames: int, faces) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """BGR frames (480, 640, 3) and each frame's true points [(68, 2) per face]. The first face's photo, padded
    with its mean colour, is the background; a second face is pasted with a soft elliptical mask."""
    clip_frames, truths = [], []
    for k in range(frames):
        frame, truth = None, []
        for (_, photo, points), (where, angle, scale, height) in zip(faces, face_motion(clip, k)):
            centre = points.mean(axis=0)
            zoom = scale * height / (points[:, 1].max() - points[:, 1].min())
            matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, zoom)
            matrix[:, 2] += where - centre
            mean = [float(v) for v in photo.reshape(-1, 3).mean(axis=0)]
            warped = cv2.warpAffine(photo, matrix, SIZE_WH, flags=cv2.INTER_LINEAR, borderValue=mean)
            moved = points @ matrix[:, :2].T + matrix[:, 2]
            if frame is None:
                frame = warped
            else:
                mask = np.zeros(frame.shape[:2], np.float32)
                axes = (int(0.9 * scale * height), int(1.1 * scale * height))
                cv2.ellipse(mask, tuple(int(v) for v in moved.mean(axis=0)), axes, -angle, 0, 360, 1.0, -1)
                mask = cv2.GaussianBlur(mask, (0, 0), 0.1 * height)[..., None]
                frame = (frame * (1 - mask) + warped * mask).astype(np.uint8)
            truth.append(moved)
        clip_frames.append(np.ascontiguousarray(frame))
        truths.append(truth)
    return clip_frames, truths


def matched(faces, truth: list[np.ndarray]) -> list[np.ndarray | None]:
    """For each true face (68, 2): the found face's points nearest its centre, or None when none is within half
    the face's height."""
    out = []
    for points in truth:
        if not len(faces):
            out.append(None)
            continue
        distance = np.linalg.norm(faces.landmarks_px.mean(axis=1) - points.mean(axis=0), axis=-1)
        near = distance.min() < 0.5 * (points[:, 1].max() - points[:, 1].min())
        out.append(faces.landmarks_px[int(np.argmin(distance))] if near else None)
    return out


def run_clip(pipeline, clip) -> tuple[float, list]:
    pipeline.reset()
    start, results = time.perf_counter(), []
    for k, frame in enumerate(clip):
        results.append(pipeline.track(frame, k / FPS, color="bgr"))
    return time.perf_counter() - start, results


def timed_modes(pipelines: dict, clip, repeats: int) -> tuple[dict, dict]:
    """name -> median seconds over the repeats, name -> the last pass's results; one warm-up pass each first,
    then the modes take turns, reversed every other pass."""
    for pipeline in pipelines.values():
        run_clip(pipeline, clip)
    seconds, outputs = {name: [] for name in pipelines}, {}
    for r in range(repeats):
        for name in (list(pipelines) if r % 2 == 0 else list(pipelines)[::-1]):
            took, outputs[name] = run_clip(pipelines[name], clip)
            seconds[name].append(took)
    return {name: float(np.median(s)) for name, s in seconds.items()}, outputs


def agreement(mine: list, base: list, truths: list) -> dict:
    """Gap of each face-frame's points to the base mode's, and error against the true points (px)."""
    from facekit.landmarks import five_from_ibug68

    gaps, errors, total = [], [], 0
    for frame_mine, frame_base, frame_truth in zip(mine, base, truths):
        for m, b, t in zip(frame_mine, frame_base, frame_truth):
            total += 1
            if m is not None and b is not None:
                gaps.append(float(np.linalg.norm(m - b, axis=-1).mean()))
            if m is not None:
                truth = t if len(m) == len(t) else five_from_ibug68(t)
                errors.append(float(np.linalg.norm(m - truth, axis=-1).mean()))
    gaps = np.array(gaps)
    return {"gap_median": float(np.median(gaps)) if len(gaps) else np.nan,
            "gap_p95": float(np.percentile(gaps, 95)) if len(gaps) else np.nan,
            "within_2px": int(np.sum(gaps <= 2)), "gap_frames": len(gaps),
            "gap_max": float(gaps.max()) if len(gaps) else np.nan,
            "truth_px": float(np.mean(errors)) if errors else np.nan, "found": len(errors), "face_frames": total}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--landmarks", required=True, help="exported landmark .tflite (with its .json)")
    p.add_argument("--detector", default="mtcnn", help="mtcnn[:DIR] or dbface:FILE.tflite")
    p.add_argument("--clips", nargs="+", default=["drift", "motion"], choices=["drift", "motion"])
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--redetect-every", type=int, nargs="+", default=[10, 30],
                   help="tracking modes to time: the detector runs every N frames (and when a face is lost)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from facekit.infer.pipeline import FacePipeline
    from facekit.infer.runtime import LandmarkPredictor
    from freeze.predict import make_detector

    faces = held_out_faces()
    detector = make_detector(args.detector, args.threads)
    landmarks = LandmarkPredictor(args.landmarks, args.threads)
    modes = {"detect every frame": 1, **{f"tracking (detect every {n})": n for n in args.redetect_every}}
    print(f"{args.frames} frames of {SIZE_WH[0]}x{SIZE_WH[1]} per clip, detector {args.detector}, landmarks "
          f"{os.path.basename(args.landmarks)}, {args.threads} threads, median of {args.repeats} passes after a "
          f"warm-up; faces: {', '.join(name for name, _, _ in faces)} (held out from landmark training)")
    for clip_name in args.clips:
        clip, truths = make_clip(clip_name, args.frames, faces[:len(face_motion(clip_name, 0))])
        pipelines = {name: FacePipeline(detector, landmarks, redetect_every=every) for name, every in modes.items()}
        seconds, outputs = timed_modes(pipelines, clip, args.repeats)
        found = {name: [matched(f, t) for f, t in zip(results, truths)] for name, results in outputs.items()}
        base = found["detect every frame"]
        print(f"\nclip {clip_name}: {len(truths[0])} face(s)")
        print(f"{'mode':<30}{'fps':>7}{'ratio':>7}{'detector':>9}{'gap med':>8}{'p95':>6}{'<=2px':>10}{'max':>7}"
              f"{'truth px':>9}{'found':>10}")
        first = len(clip) / seconds["detect every frame"]
        for name in modes:
            fps, a = len(clip) / seconds[name], agreement(found[name], base, truths)
            runs = sum(r.detected for r in outputs[name])
            print(f"{name:<30}{fps:>7.1f}{fps / first:>7.2f}{runs:>9}{a['gap_median']:>8.2f}{a['gap_p95']:>6.2f}"
                  f"{a['within_2px']:>5}/{a['gap_frames']:<4}{a['gap_max']:>7.2f}{a['truth_px']:>9.2f}"
                  f"{a['found']:>5}/{a['face_frames']:<4}")
    print("\ngap: mean distance (px) of a face's points from the detect-every-frame points; <=2px: face-frames "
          "within 2 px of them; truth px: mean distance from the true points over the face-frames found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
