"""Run exported .tflite landmark models with ai_edge_litert alone (no TensorFlow import).

LandmarkPredictor crops each face exactly like the converter (square box around the face box, scaled by the
scheme's face scale and the margin, zero padding outside the image), runs the model on all faces in one batch,
and maps the points back to image pixels. OneEuroFilter smooths landmarks over video frames.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from facekit.files import read_json
from facekit.geometry import crop_and_resize, crop_norm_to_points, landmark_box_xyxy, square_crop_box
from facekit.landmarks import get_scheme


class TFLiteModel:
    """A .tflite file with one image input and one output, run on batches (resized to the batch when allowed)."""

    def __init__(self, path: str, num_threads: int | None = None):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such model file")
        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.dynamic_batch = self.input["shape_signature"][0] == -1
        self.batch = int(self.input["shape"][0])

    @property
    def input_size(self) -> int:
        return int(self.input["shape"][1])

    def _resize(self, batch: int) -> None:
        if batch != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.batch = batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images (N, S, S, 3) uint8 -> output (N, ...) float32 (dequantised if the output is quantised)."""
        images = np.ascontiguousarray(images, dtype=self.input["dtype"])
        if self.dynamic_batch:
            self._resize(len(images))
            chunks = [images]
        else:
            chunks = [images[i:i + self.batch] for i in range(0, len(images), self.batch)]
        results = []
        for chunk in chunks:
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self.output["index"]).copy()
            scale, zero = self.output["quantization"]
            results.append((out.astype(np.float32) - zero) * scale if scale else out.astype(np.float32))
        return np.concatenate(results)


def run_tflite(path: str, images: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """One-off: run a .tflite model on uint8 images (N, S, S, 3)."""
    return TFLiteModel(path, num_threads)(images)


class LandmarkPredictor:
    """predict(image, boxes) -> (F, K, 2) landmarks in image pixels, for F face boxes (xyxy, face-tight).

    The crop parameters come from MODEL.json beside the .tflite (written by freeze/export.py)."""

    def __init__(self, model_path: str, num_threads: int | None = None):
        self.model = TFLiteModel(model_path, num_threads)
        sidecar = os.path.splitext(model_path)[0] + ".json"
        if not os.path.isfile(sidecar):
            raise ValueError(f"{sidecar}: missing; export the model with freeze/export.py, which writes it")
        self.info = read_json(sidecar)
        self.scheme = get_scheme(self.info["scheme"])
        self.crop_scale = self.scheme.face_scale * (1 + 2 * self.info["margin"])
        self.size = self.model.input_size

    def crop_boxes(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        return np.stack([square_crop_box(b, self.crop_scale) for b in np.asarray(boxes_xyxy, np.float64)])

    def predict(self, image: np.ndarray, boxes_xyxy, color: str = "bgr") -> np.ndarray:
        """image (H, W, 3) uint8 in `color` order ("bgr" as from cv2.imread, or "rgb"); boxes (F, 4) or (4,)."""
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, self.scheme.num_points, 2))
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color == "bgr" else image
        crops = self.crop_boxes(boxes)
        batch = np.stack([crop_and_resize(rgb, c, self.size) for c in crops])
        points_crop = self.model(batch)
        return np.stack([crop_norm_to_points(p / self.size, c) for p, c in zip(points_crop, crops)])

    def predict_extents(self, image: np.ndarray, extents_xyxy, color: str = "bgr") -> np.ndarray:
        """predict() from dense landmark extents (F, 4), the extent a detector's face box stands for
        (facekit.landmarks.extent_from_face_box), whatever the model's scheme: a five-point model's crop frames
        the face as the converter framed it, its own points' box times the scheme's face_scale."""
        extents = np.asarray(extents_xyxy, np.float64).reshape(-1, 4)
        centre, half = (extents[:, :2] + extents[:, 2:]) / 2, (extents[:, 2:] - extents[:, :2]) / 2
        half = half / self.scheme.face_scale
        return self.predict(image, np.concatenate([centre - half, centre + half], axis=1), color=color)

    @staticmethod
    def box_from_points(points_px: np.ndarray) -> np.ndarray:
        """The face box to use on the next video frame: the landmarks' bounding box (4,)."""
        return landmark_box_xyxy(np.asarray(points_px))


class OneEuroFilter:
    """One-Euro filter (Casiez et al., CHI 2012) for landmark jitter on video: an adaptive low-pass whose cutoff
    rises with speed, so still faces are smoothed hard and fast motion is followed without lag.

    min_cutoff (Hz): smoothing when still (lower = smoother); beta: how fast the cutoff grows with speed;
    d_cutoff (Hz): cutoff for the speed estimate. Works on any array shape, e.g. (K, 2) or (F, K, 2)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter the value x observed at time t (seconds); returns the smoothed value."""
        x = np.asarray(x, np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = max(t - self.t, 1e-6)
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.copy()
