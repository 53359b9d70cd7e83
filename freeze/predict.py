"""Draw faces found by exported .tflite models on images (PNG) and videos (MP4). No TensorFlow needed.

    python freeze/predict.py --landmarks runs/senet/export/senet_fp32.tflite photo.jpg clip.mp4 --out drawn/
    python freeze/predict.py --landmarks M.tflite --boxes boxes.txt photos/*.jpg --out drawn/
    python freeze/predict.py --detector dbface:runs/dbface_small/export/dbface_small_fp32.tflite photos/*.jpg \
        --out drawn/ [--landmarks M.tflite]       # detected boxes and five points [+ the landmark model's points]
    python freeze/predict.py --detector mtcnn --landmarks M.tflite photo.jpg clip.mp4 --out drawn/ --json

Face boxes: from a detector (--detector dbface:FILE.tflite or mtcnn[:DIR] with mtcnn_{pnet,rnet,onet}.tflite; no
DIR: the package's weights exported to runs/mtcnn_export), from --boxes (lines "IMAGE_NAME x0 y0 x1 y1", several
lines per image allowed), else the whole image is one face. With a detector, --landmarks is optional and the two
run as one pipeline (facekit.infer.pipeline.FacePipeline); on video it tracks faces by their landmarks and runs
the detector every --redetect-every frames or when a face is lost. On video without a detector the box of each
frame is the previous frame's landmark box. A One-Euro filter (--min-cutoff, --beta) removes jitter. --json
writes the boxes, scores and points of every image (and every video frame) beside the drawings.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

import cv2
import numpy as np

from facekit.files import write_json

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def read_boxes(path: str) -> dict:
    boxes = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            try:
                boxes[os.path.basename(fields[0])].append([float(v) for v in fields[1:5]])
                assert len(fields) == 5
            except (ValueError, AssertionError):
                raise ValueError(f"{path}:{number}: expected 'IMAGE x0 y0 x1 y1', got {line.strip()!r}") from None
    return boxes


def whole_image_box(shape, crop_scale: float) -> np.ndarray:
    """The face box whose converter-style crop is the whole (square-padded) image."""
    h, w = shape[:2]
    half = max(h, w) / crop_scale / 2
    return np.array([[w / 2 - half, h / 2 - half, w / 2 + half, h / 2 + half]])


def draw(image, boxes, points):
    from facekit.draw import draw_points

    out = image
    for box, pts in zip(boxes, points):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 160, 0), max(1, round(image.shape[0] / 500)), cv2.LINE_AA)
        if np.isfinite(pts).all():
            out = draw_points(out, pts, (0, 255, 0), radius=max(1, round(image.shape[0] / 300)))
    return out


def make_detector(spec: str | None, threads: int | None):
    """'dbface:FILE.tflite' or 'mtcnn[:DIR]' -> detector with .detect(image, color=...) -> Detections; None."""
    if not spec or spec == "none":
        return None
    kind, _, where = spec.partition(":")
    if kind == "dbface":
        from facekit.infer.detector import FaceDetector
        if not where:
            raise ValueError("--detector dbface:FILE.tflite needs the exported model's path")
        return FaceDetector(where, threads)
    if kind == "mtcnn":
        from facekit.infer.mtcnn import tflite_cascade
        return tflite_cascade(where or os.path.join("runs", "mtcnn_export"), threads)
    raise ValueError(f"--detector {spec!r}: expected none, dbface:FILE.tflite or mtcnn[:DIR]")


def faces_json(boxes, points, scores=None) -> list[dict]:
    """Faces as JSON-ready dicts: box [x0, y0, x1, y1], points [[x, y], ...] (null where unknown), score."""
    out = []
    for k, (box, pts) in enumerate(zip(boxes, points)):
        face = {"box": np.round(np.asarray(box, float), 2).tolist(),
                "points": [[None if not np.isfinite(v) else round(float(v), 2) for v in p] for p in pts]}
        if scores is not None:
            face["score"] = round(float(scores[k]), 4)
        out.append(face)
    return out


def predict_image(predictor, path, boxes, out_dir, pipeline=None, as_json=False):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    scores = None
    if pipeline is not None:
        faces = pipeline(image, color="bgr")
        boxes, scores = faces.boxes_xyxy, faces.scores
        points = faces.five_px if faces.landmarks_px is None else faces.landmarks_px
    else:
        boxes = np.asarray(boxes, np.float64) if boxes else whole_image_box(image.shape, predictor.crop_scale)
        points = predictor.predict(image, boxes, color="bgr")
    stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
    cv2.imwrite(stem + ".png", draw(image, boxes, points))
    if as_json:
        write_json(stem + ".json", {"image": path, "faces": faces_json(boxes, points, scores)})
    return stem + ".png"


def open_video(path: str, out_dir: str):
    """(capture, fps, output path) for a readable video."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"{path}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    return capture, fps, os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".mp4")


def track_video(pipeline, path, out_dir, as_json=False):
    """Detect -> align -> track through a video with the pipeline; draws every frame."""
    capture, fps, out = open_video(path, out_dir)
    writer, frames, index = None, [], 0
    pipeline.reset()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        faces = pipeline.track(frame, index / fps, color="bgr")
        points = faces.five_px if faces.landmarks_px is None else faces.landmarks_px
        writer.write(draw(frame, faces.boxes_xyxy, points))
        frames.append({"frame": index, "detected": faces.detected,
                       "faces": faces_json(faces.boxes_xyxy, points, faces.scores)})
        index += 1
    capture.release()
    if writer is None:
        raise ValueError(f"{path}: the video has no frames")
    writer.release()
    if as_json:
        write_json(os.path.splitext(out)[0] + ".json", {"video": path, "fps": fps, "frames": frames})
    return out


def predict_video(predictor, path, boxes, out_dir, min_cutoff, beta):
    from facekit.infer.runtime import OneEuroFilter

    capture, fps, out = open_video(path, out_dir)
    writer, smoother, frame_index, current = None, OneEuroFilter(min_cutoff, beta), 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
            current = np.asarray(boxes, np.float64) if boxes else whole_image_box(frame.shape, predictor.crop_scale)
        points = smoother(predictor.predict(frame, current, color="bgr"), frame_index / fps)
        writer.write(draw(frame, current, points))
        current = np.stack([predictor.box_from_points(p) for p in points])
        frame_index += 1
    capture.release()
    if writer is None:
        raise ValueError(f"{path}: the video has no frames")
    writer.release()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="images or videos")
    p.add_argument("--landmarks", help="exported landmark .tflite (with its .json beside it)")
    p.add_argument("--detector", default="none", help="none, dbface:FILE.tflite or mtcnn[:DIR] (LiteRT)")
    p.add_argument("--boxes", help="text file of face boxes: IMAGE x0 y0 x1 y1 per line")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: all)")
    p.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro filter: smoothing when still (Hz)")
    p.add_argument("--beta", type=float, default=0.05, help="One-Euro filter: speed coefficient")
    p.add_argument("--redetect-every", type=int, default=10,
                   help="video with a detector and --landmarks: run the detector at least every N frames")
    p.add_argument("--json", action="store_true", help="also write OUT/NAME.json with boxes, scores and points")
    args = p.parse_args(argv)
    from facekit.infer.pipeline import FacePipeline
    from facekit.infer.runtime import LandmarkPredictor

    try:
        detector = make_detector(args.detector, args.threads)
        if args.landmarks is None and detector is None:
            raise ValueError("give --landmarks MODEL.tflite, --detector, or both")
        predictor = LandmarkPredictor(args.landmarks, args.threads) if args.landmarks else None
        pipeline = None if detector is None else FacePipeline(detector, predictor, args.redetect_every,
                                                              min_cutoff=args.min_cutoff, beta=args.beta)
        boxes = read_boxes(args.boxes) if args.boxes else {}
        os.makedirs(args.out, exist_ok=True)
        for path in args.inputs:
            given = boxes.get(os.path.basename(path), [])
            if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS:
                written = track_video(pipeline, path, args.out, args.json) if pipeline else \
                    predict_video(predictor, path, given, args.out, args.min_cutoff, args.beta)
            else:
                written = predict_image(predictor, path, given, args.out, pipeline, args.json)
            print(f"{path} -> {written}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
