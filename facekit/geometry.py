"""The project's one coordinate convention and the crop helpers built on it.

Convention: pixel (col i, row j) covers [i, i+1) x [j, j+1). Points are continuous (x, y) with (0, 0) at the
top-left corner of the top-left pixel, so the centre of pixel (i, j) is (i + 0.5, j + 0.5). An image of width W
spans x in [0, W]; a horizontal flip maps x -> W - x (and 1 - x for points normalised to a crop).
Boxes are `xyxy` = (x0, y0, x1, y1) in the same continuous frame. OpenCV's resize follows the same
half-pixel-centre rule, so crop + resize maps points by a plain scale and offset.
"""
from __future__ import annotations

import cv2
import numpy as np


def pixel_centres_to_continuous(points: np.ndarray, first_index: int) -> np.ndarray:
    """Annotation points given as pixel indices (centre of the first pixel = first_index, 0 or 1) -> continuous."""
    return np.asarray(points, np.float64) - first_index + 0.5


def landmark_box_xyxy(points_px: np.ndarray) -> np.ndarray:
    """points (K, 2) -> their bounding box (4,) xyxy."""
    return np.concatenate([points_px.min(axis=0), points_px.max(axis=0)])


def square_crop_box(box_xyxy: np.ndarray, scale: float, align: int = 1) -> np.ndarray:
    """A square box centred on box_xyxy with side scale * max(w, h), snapped to the integer grid.

    align: the origin and side are multiples of this (for reduced-size JPEG decoding). Returns (4,) float64
    xyxy with integer values, at least `align` wide.
    """
    x0, y0, x1, y1 = np.asarray(box_xyxy, np.float64)
    side = max(x1 - x0, y1 - y0) * scale
    side_q = max(align, align * round(side / align))
    ox = align * round(((x0 + x1) / 2 - side_q / 2) / align)
    oy = align * round(((y0 + y1) / 2 - side_q / 2) / align)
    return np.array([ox, oy, ox + side_q, oy + side_q], np.float64)


def crop_and_resize(image: np.ndarray, box_xyxy: np.ndarray, size: int) -> np.ndarray:
    """Crop an integer box (may extend past the image; zero padding there) and resize it to size x size.

    image (H, W, C) uint8 -> (size, size, C) uint8. INTER_AREA when shrinking, bilinear when enlarging.
    """
    x0, y0, x1, y1 = (int(v) for v in box_xyxy)
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 >= cx1 or cy0 >= cy1:
        patch = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], image.dtype)
    else:
        patch = image[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            patch = cv2.copyMakeBorder(patch, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_CONSTANT, value=0)
    interpolation = cv2.INTER_AREA if (x1 - x0) > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def points_to_crop_norm(points_px: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """Source-image points (K, 2) -> points normalised to the crop box, [0, 1] inside it."""
    box = np.asarray(box_xyxy, np.float64)
    return (points_px - box[:2]) / (box[2:] - box[:2])


def crop_norm_to_points(points_norm: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """Inverse of points_to_crop_norm: (K, 2) normalised -> source-image pixels."""
    box = np.asarray(box_xyxy, np.float64)
    return np.asarray(points_norm, np.float64) * (box[2:] - box[:2]) + box[:2]


def flip_points(points: np.ndarray, width: float, flip_permutation: np.ndarray) -> np.ndarray:
    """Mirror points (K, 2) of an image of this width (1.0 for normalised points) and swap left/right names."""
    flipped = np.array(points, np.float64)[flip_permutation]
    flipped[:, 0] = width - flipped[:, 0]
    return flipped
