"""Single-shot face detection on LiteRT (no TensorFlow): DBFace exported with its decoding inside.

The exported model takes one uint8 RGB square (1, S, S, 3) and returns its top-K peaks: scores (1, K), boxes_xyxy
(1, K, 4) and landmarks_px (1, K, 5, 2) in pixels of that square. FaceDetector letterboxes a photo into the square
(scaled to fit, top-left aligned, zero padding), keeps peaks above the score threshold, runs greedy NMS and maps
boxes and points back to the photo.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from facekit.boxes import nms
from facekit.infer.detections import Detections, as_rgb

SCORE_THRESHOLD = 0.3
NMS_THRESHOLD = 0.4


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """image (H, W, 3) uint8 -> (size x size canvas with the image scaled to fit at the top-left, scale)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def postprocess(scores: np.ndarray, boxes_xyxy: np.ndarray, landmarks_px: np.ndarray, scale: float,
                image_hw: tuple[int, int], score_threshold: float = SCORE_THRESHOLD,
                nms_threshold: float | None = NMS_THRESHOLD) -> Detections:
    """Peaks of one image (K,), (K, 4), (K, 5, 2) in canvas pixels -> Detections in image pixels: score
    threshold, greedy NMS (None: none, as the WIDER protocol runs DBFace), undo the letterbox, clip boxes."""
    keep = scores >= score_threshold
    scores, boxes, points = scores[keep], boxes_xyxy[keep] / scale, landmarks_px[keep] / scale
    if nms_threshold is not None and len(scores):
        kept = nms(boxes, scores, nms_threshold)
        scores, boxes, points = scores[kept], boxes[kept], points[kept]
    height, width = image_hw
    boxes = np.clip(boxes, 0, [width, height, width, height])
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), points.reshape(-1, 5, 2).astype(np.float32))


class FaceDetector:
    """detect(image, color=...) -> Detections, with an exported DBFace .tflite (freeze/export.py)."""

    def __init__(self, path: str, num_threads: int | None = None, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float | None = NMS_THRESHOLD):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such model file")
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.run = self.interpreter.get_signature_runner()
        self.size = int(self.interpreter.get_input_details()[0]["shape"][1])
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def peaks(self, canvas: np.ndarray) -> dict:
        """One letterboxed canvas (S, S, 3) uint8 -> {"scores": (K,), "boxes_xyxy": (K, 4), "landmarks_px": ...}."""
        out = self.run(image=canvas[None])
        return {key: value[0] for key, value in out.items()}

    def detect(self, image: np.ndarray, *, color: str) -> Detections:
        rgb = as_rgb(image, color)
        canvas, scale = letterbox(rgb, self.size)
        out = self.peaks(canvas)
        return postprocess(out["scores"], out["boxes_xyxy"], out["landmarks_px"], scale, rgb.shape[:2],
                           self.score_threshold, self.nms_threshold)
