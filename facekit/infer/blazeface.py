"""MediaPipe's BlazeFace as a baseline detector on LiteRT (no TensorFlow, no MediaPipe import): the two
face_detection .tflite files that ship inside the mediapipe==0.10.21 wheel, with our own SSD anchors, decoding and
NMS. For benchmarks and tests only: the weights are MediaPipe's and are never shipped with facekit.

Each model takes one float32 RGB square (1, S, S, 3) scaled to [-1, 1] and returns, per anchor, 16 regressors
(box centre offset, width, height, then six (x, y) keypoints, all in input pixels relative to the anchor centre)
and one score logit. The anchors follow MediaPipe's SsdAnchorsCalculator with fixed-size anchors: one grid per
stride, consecutive layers of one stride merged, two anchors per layer and cell where an interpolated scale is
used (short range) and one where it is not (full range). Keypoints: subject's right eye, left eye, nose tip,
mouth centre, right and left ear tragion; the first three fill our five-point scheme, the mouth corners stay NaN.
MediaPipe's graphs cut scores at 0.5 (short) and 0.6 (full) and blend overlapping boxes (weighted NMS); here the
cut-off is a parameter, so that AP sees the whole precision-recall curve, and NMS is the same greedy NMS the other
detectors use.
"""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass

import numpy as np

from facekit.infer.detections import Detections, as_rgb
from facekit.infer.detector import NMS_THRESHOLD, letterbox, postprocess


@dataclass(frozen=True)
class BlazeFaceModel:
    file: str                 # inside the wheel's mediapipe/modules/face_detection/
    size: int                 # input side
    strides: tuple            # one per SSD layer
    interpolated: bool        # a second anchor per layer (interpolated_scale_aspect_ratio 1.0)


MODELS = {
    "blazeface-short": BlazeFaceModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True),
    "blazeface-full": BlazeFaceModel("face_detection_full_range_sparse.tflite", 192, (4,), False),
}
WHEEL = "mediapipe==0.10.21"


def ssd_anchors(size: int, strides: tuple, interpolated: bool) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y) in [0, 1], in the models' output order: layers of one stride merged,
    then row-major cells, then the anchors of each cell."""
    centres, layer = [], 0
    while layer < len(strides):
        stride, same = strides[layer], 0
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        per_cell = same * (2 if interpolated else 1)
        cells = -(-size // stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, size: int):
    """Raw outputs (N, 16), (N,) or (N, 1), anchors (N, 2) -> (scores (N,), boxes_xyxy (N, 4) and keypoints
    (N, 6, 2), both in input pixels)."""
    raw = regressors.reshape(len(anchors), 16).astype(np.float64)
    centre_px = anchors * size
    centre = raw[:, :2] + centre_px
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + centre_px[:, None]
    scores = 1 / (1 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100, 100)))
    return scores, boxes, keypoints


def model_spec(name: str) -> BlazeFaceModel:
    if name not in MODELS:
        raise ValueError(f"unknown BlazeFace model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name]


def baseline_model_path(name: str) -> str:
    """The wheel's .tflite file for `name` (a key of MODELS); ValueError when the wheel is not installed."""
    spec = model_spec(name)
    try:
        distribution = importlib.metadata.distribution("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    path = distribution and str(distribution.locate_file(f"mediapipe/modules/face_detection/{spec.file}"))
    if not path or not os.path.isfile(path):
        raise ValueError(f"{name} reads its weights from the {WHEEL} wheel, which is not installed: "
                         f"pip install --no-deps {WHEEL}  (only its files are read; it is never imported)")
    return path


class BlazeFaceDetector:
    """detect(image, color=...) -> Detections with one of MediaPipe's BlazeFace models (see the module doc)."""

    def __init__(self, name: str, num_threads: int | None = None, score_threshold: float = 0.5,
                 nms_threshold: float | None = NMS_THRESHOLD, path: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.model = model_spec(name)
        path = path or baseline_model_path(name)
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self.regressors, self.logits = outputs[0]["index"], outputs[1]["index"]
        self.size = self.model.size
        self.anchors = ssd_anchors(self.size, self.model.strides, self.model.interpolated)
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def detect(self, image: np.ndarray, *, color: str) -> Detections:
        rgb = as_rgb(image, color)
        canvas, scale = letterbox(rgb, self.size)
        self.interpreter.set_tensor(self.input, canvas[None].astype(np.float32) / 127.5 - 1)
        self.interpreter.invoke()
        scores, boxes, keypoints = decode(self.interpreter.get_tensor(self.regressors)[0],
                                          self.interpreter.get_tensor(self.logits)[0], self.anchors, self.size)
        five = np.full((len(scores), 5, 2), np.nan)
        five[:, :3] = keypoints[:, :3]  # eyes and nose tip; BlazeFace gives the mouth's centre, not its corners
        return postprocess(scores, boxes, five, scale, rgb.shape[:2], self.score_threshold, self.nms_threshold)
