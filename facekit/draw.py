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
