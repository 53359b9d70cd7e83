"""Pictures for people: landmarks drawn on images, and image grids."""
from __future__ import annotations

import cv2
import numpy as np


def draw_points(image_bgr: np.ndarray, points_px: np.ndarray, color=(0, 255, 0), radius: int = 1) -> np.ndarray:
    """Copy of image (H, W, 3) with each continuous-coordinate point (K, 2) drawn as a dot."""
    out = image_bgr.copy()
    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    for x, y in np.asarray(points_px, np.float64) - 0.5:  # continuous -> pixel-index coordinates
        cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), radius * 16, color, -1, cv2.LINE_AA, shift)
    return out


def tile(images: list[np.ndarray], columns: int = 8) -> np.ndarray:
    """Same-size images (H, W, 3) -> one grid image, row by row, black where a row is short."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.zeros((rows * h, min(columns, len(images)) * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return grid


def draw_detections(image_bgr: np.ndarray, boxes_xyxy: np.ndarray, landmarks_px: np.ndarray | None = None,
                    color=(0, 255, 0), thickness: int = 1) -> np.ndarray:
    """Copy of an image with boxes (F, 4) and five points (F, 5, 2) (NaN rows skipped) drawn."""
    out = image_bgr.copy()
    for k, box in enumerate(np.asarray(boxes_xyxy, np.float64)):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
        if landmarks_px is not None and np.isfinite(landmarks_px[k]).all():
            out = draw_points(out, landmarks_px[k], (0, 0, 255), radius=max(1, thickness))
    return out


def letterbox_tile(image: np.ndarray, size: int) -> np.ndarray:
    """Fit an image into a size x size black square (top-left aligned) for preview grids."""
    scale = size / max(image.shape[:2])
    resized = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    out[:resized.shape[0], :resized.shape[1]] = resized
    return out
