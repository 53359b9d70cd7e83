"""Axis-aligned boxes in continuous image pixels, xyxy (a box [x1, x2) covers x2 - x1 pixels): IoU, greedy NMS,
calibration by regression offsets and squaring. NumPy only, shared by the MTCNN cascade (Keras and LiteRT), the
training-sample generator and the detection evaluation."""
from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """boxes (..., 4) -> (...)."""
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, mode: str = "union") -> np.ndarray:
    """boxes_a (A, 4), boxes_b (B, 4) -> (A, B) overlap: intersection / union, or / the smaller area ("min")."""
    boxes_a, boxes_b = np.asarray(boxes_a, np.float64)[:, None], np.asarray(boxes_b, np.float64)[None]
    top_left = np.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = np.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a, area_b = box_area(boxes_a), box_area(boxes_b)
    if mode == "union":
        denominator = area_a + area_b - inter
    elif mode == "min":
        denominator = np.minimum(area_a, area_b)
    else:
        raise ValueError(f"overlap mode must be 'union' or 'min', got {mode!r}")
    return inter / np.maximum(denominator, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union", greedy: bool = True,
        max_pairs: int = 1 << 20) -> np.ndarray:
    """Non-maximum suppression: indices (descending score) of the kept boxes (N, 4).

    greedy: a box is dropped when it overlaps a *kept* higher-scoring box by more than `threshold` (the usual NMS).
    Not greedy: dropped when it overlaps *any* higher-scoring box, kept or not; this is the `mtcnn` package's rule,
    stricter on chains of overlapping boxes, and the cascade uses it to reproduce that package's detections.
    Only pairs that overlap along x are compared, at most max_pairs at a time: never an N x N matrix."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes)[order]
    if greedy:
        keep, alive = [], np.ones(len(order), bool)
        for index in range(len(order)):
            if alive[index]:
                keep.append(index)
                later = index + 1 + np.nonzero(alive[index + 1:])[0]
                alive[later[box_iou(boxes[index:index + 1], boxes[later], mode)[0] > threshold]] = False
        return order[np.asarray(keep, dtype=np.int64)]
    return order[~_suppressed_by_any(boxes, threshold, mode, max_pairs)]


def _suppressed_by_any(boxes: np.ndarray, threshold: float, mode: str, max_pairs: int) -> np.ndarray:
    """boxes (N, 4) in rank order -> (N,) True where some earlier-ranked box overlaps by more than threshold."""
    count = len(boxes)
    suppressed = np.zeros(count, bool)
    by_x = np.argsort(boxes[:, 0], kind="stable")
    x1 = boxes[by_x, 0]
    ends = np.searchsorted(x1, boxes[by_x, 2], side="left")  # partners in x order: (i, ends[i])
    lengths = np.maximum(ends - np.arange(count) - 1, 0)
    totals = np.cumsum(lengths)
    start = 0
    while start < count:
        stop = max(start + 1, int(np.searchsorted(totals, (totals[start - 1] if start else 0) + max_pairs)))
        first = np.repeat(np.arange(start, stop), lengths[start:stop])
        second = first + 1 + (np.arange(len(first)) - np.repeat(np.cumsum(lengths[start:stop]) -
                                                                  lengths[start:stop], lengths[start:stop]))
        a, b = by_x[first], by_x[second]  # rank indices
        top_left = np.maximum(boxes[a, :2], boxes[b, :2])
        inter = np.prod(np.clip(np.minimum(boxes[a, 2:], boxes[b, 2:]) - top_left, 0, None), axis=1)
        area_a, area_b = box_area(boxes[a]), box_area(boxes[b])
        denominator = area_a + area_b - inter if mode == "union" else np.minimum(area_a, area_b)
        over = inter / np.maximum(denominator, 1e-12) > threshold
        suppressed[np.maximum(a, b)[over]] = True
        start = stop
    return suppressed


def box_sides(boxes: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """boxes (N, 4) -> (N, 4) sides (w, h, w, h); inclusive counts x2 - x1 + 1, the original MTCNN's pixel-index
    convention that its published weights were trained with."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) + (1.0 if inclusive else 0.0)
    return np.tile(size, 2)


def calibrate(boxes: np.ndarray, offsets: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Apply MTCNN regression: boxes (N, 4) + offsets (N, 4) x (w, h, w, h)."""
    return boxes + offsets * box_sides(boxes, inclusive)


def to_square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box (N, 4) to a square of its longer side, about the same centre."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def regression_targets(windows: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The offsets that `calibrate` turns windows (N, 4) into faces (N, 4): the inverse of calibrate."""
    return (faces - windows) / box_sides(windows)
