"""Face detection average precision after the WIDER FACE protocol, with two stated differences.

Per image, detections sorted by score are matched to ground truth at IoU >= 0.5: the first match of a valid
face is a true positive, a second match of it a false positive, and a match of an ignored face (invalid, or
outside the easy/medium/hard subset) is neither. Scores are min-max normalised over the whole set, precision and
recall are taken at 1000 score thresholds, and AP is the VOC all-point area under the precision-recall curve.
Differences from the official tool (wider_eval.m and its Python ports): detections on a photo without annotated
faces count as false positives here (the official tool skips such photos; WIDER val has a few, AFW none), and
IoU uses continuous-coordinate areas (facekit.boxes), without the official +1 pixel on widths and heights, which
moves the IoU of small boxes slightly. Both change AP only where those cases occur.
"""
from __future__ import annotations

import numpy as np

from facekit.boxes import box_iou

THRESHOLDS = 1000


def match_image(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, ignore: np.ndarray,
                iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One image. boxes (D, 4) sorted by descending scores (D,), truth (G, 4), ignore (G,) bool ->
    (counted (D,) bool: the detection counts as a proposal, recalled (D,): valid faces found by the first d+1)."""
    counted, recalled = np.ones(len(boxes), bool), np.zeros(len(boxes), np.int64)
    found = np.zeros(len(truth), bool)
    if len(truth) and len(boxes):
        overlap = box_iou(boxes, truth)
        for d in range(len(boxes)):
            best = int(overlap[d].argmax())
            if overlap[d, best] >= iou_threshold:
                if ignore[best]:
                    counted[d] = False
                else:
                    found[best] = True
            recalled[d] = found.sum()
    return counted, recalled


def precision_recall(detections: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray],
                     ignores: list[np.ndarray], iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """detections [(boxes (D, 4), scores (D,))] per image -> precision, recall at 1000 descending thresholds."""
    all_scores = np.concatenate([s for _, s in detections]) if detections else np.zeros(0)
    low, high = (all_scores.min(), all_scores.max()) if all_scores.size else (0.0, 1.0)
    proposals, true_positives = np.zeros(THRESHOLDS), np.zeros(THRESHOLDS)
    thresholds = 1 - (np.arange(THRESHOLDS) + 1) / THRESHOLDS
    for (boxes, scores), truth, ignore in zip(detections, truths, ignores):
        if not len(boxes):
            continue
        scores = (scores - low) / max(high - low, 1e-12)
        order = np.argsort(-scores, kind="stable")
        counted, recalled = match_image(boxes[order], scores[order], truth, ignore, iou_threshold)
        last = np.searchsorted(-scores[order], -thresholds, side="right") - 1  # last detection >= threshold
        has = last >= 0
        proposals[has] += np.cumsum(counted)[last[has]]
        true_positives[has] += recalled[last[has]]
    valid = sum(int((~ignore).sum()) for ignore in ignores)
    precision = np.divide(true_positives, proposals, out=np.zeros(THRESHOLDS), where=proposals > 0)
    return precision, true_positives / max(valid, 1)


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated area under the precision-recall curve (recall ascending)."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def average_precision(detections, truths, ignores, iou_threshold: float = 0.5) -> float:
    return voc_ap(*precision_recall(detections, truths, ignores, iou_threshold))


def read_difficulty_mat(path: str) -> dict[str, np.ndarray]:
    """An official wider_{easy,medium,hard}_val.mat -> {image name without .jpg: 0-based indices of the faces in
    that subset}."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        files, kept = mat["file_list"], mat["gt_list"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a WIDER FACE difficulty .mat with file_list and gt_list ({error})") from None
    subset = {}
    for event_files, event_kept in zip(files[:, 0], kept[:, 0]):
        for name, indices in zip(event_files[:, 0], event_kept[:, 0]):
            subset[str(np.asarray(name).ravel()[0])] = np.asarray(indices, np.int64).ravel() - 1
    return subset


def matched_point_nme(found: list, truth_boxes: list[np.ndarray], truth_points: list) -> tuple[float, int]:
    """Mean five-point NME (mean point distance / inter-ocular distance of the truth) over the annotated faces
    that a detection matches at IoU >= 0.5 (the best-overlapping one), and their count. found: Detections per
    image; truth_boxes (F, 4) and truth_points (F, 5, 2) or None per image. Only the points a detector gives
    count (BlazeFace: eyes and nose); faces whose truth is incomplete are left out."""
    errors = []
    for detections, boxes, points in zip(found, truth_boxes, truth_points):
        if points is None or not len(detections) or not len(boxes):
            continue
        overlap = box_iou(boxes, detections.boxes_xyxy)
        for face, truth in enumerate(points):
            best = int(overlap[face].argmax())
            given = np.isfinite(detections.landmarks_px[best]).all(axis=1)
            if overlap[face, best] >= 0.5 and np.isfinite(truth).all() and given.any():
                distance = np.linalg.norm(detections.landmarks_px[best][given] - truth[given], axis=1).mean()
                errors.append(distance / np.linalg.norm(truth[0] - truth[1]))
    return (float(np.mean(errors)) if errors else float("nan")), len(errors)
