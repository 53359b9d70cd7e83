"""The one result type of every face detector in facekit.infer, and the input check they share (NumPy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Faces found in one image: boxes_xyxy (F, 4) and landmarks_px (F, 5, 2) in image pixels, scores (F,).
    Landmarks follow the five-point scheme: right eye, left eye (subject's), nose tip, mouth corners."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    landmarks_px: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def as_rgb(image: np.ndarray, color: str) -> np.ndarray:
    """Check an (H, W, 3) uint8 image and return it as RGB; `color` says what it is ("rgb" or "bgr")."""
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr' (the networks were trained on RGB), got {color!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} and dtype {image.dtype}")
    return image[..., ::-1] if color == "bgr" else image
