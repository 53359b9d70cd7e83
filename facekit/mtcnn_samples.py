"""MTCNN training samples: kinds, labelling of candidate windows by IoU with the faces, and regression targets.

A window is a square crop proposed around (or away from) a face. Its kind follows its best IoU with the image's
valid faces: >= 0.65 positive, >= 0.4 part, < 0.3 negative, and in between unused (ambiguous). Positive and part
windows carry box offsets to their face (facekit.boxes.regression_targets); landmark samples (MTFL faces) carry
five points as fractions of the window. Mixed 3:1:1:2 (negative:positive:part:landmark) for training.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from facekit.boxes import box_iou, regression_targets

POSITIVE_IOU, PART_IOU, NEGATIVE_IOU = 0.65, 0.4, 0.3
MIX = {"negative": 3, "positive": 1, "part": 1, "landmark": 2}


class SampleKind(IntEnum):
    """Stored in each record; decides which losses a sample feeds (face: negative/positive, box: positive/part,
    landmarks: landmark)."""

    NEGATIVE = 0
    POSITIVE = 1
    PART = 2
    LANDMARK = 3


def label_windows(windows: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """windows (N, 4), faces (F, 4) -> (kinds (N,) int with -1 for ambiguous windows, box targets (N, 4) offsets
    to the best-overlapping face, zero for negatives)."""
    if not len(faces):
        return np.full(len(windows), int(SampleKind.NEGATIVE)), np.zeros((len(windows), 4))
    overlap = box_iou(windows, faces)
    best = overlap.argmax(axis=1)
    best_iou = overlap[np.arange(len(windows)), best]
    kinds = np.full(len(windows), -1)
    kinds[best_iou < NEGATIVE_IOU] = SampleKind.NEGATIVE
    kinds[(best_iou >= PART_IOU) & (best_iou < POSITIVE_IOU)] = SampleKind.PART
    kinds[best_iou >= POSITIVE_IOU] = SampleKind.POSITIVE
    targets = regression_targets(windows, faces[best])
    targets[kinds == SampleKind.NEGATIVE] = 0
    return kinds, targets
