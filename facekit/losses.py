"""Losses on named targets and outputs. Regression losses take points as (N, K, 2) crop-normalised coordinates.

Every loss returns a scalar: the mean over the batch of a per-sample sum over landmarks, so its size does not
depend on the batch size.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def l2_loss(diff):
    """diff (N, K, 2) -> mean over samples of the summed squared distance."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=[1, 2]))


def l1_loss(diff):
    return tf.reduce_mean(tf.reduce_sum(tf.abs(diff), axis=[1, 2]))


def smooth_l1_loss(diff, beta: float = 1.0):
    a = tf.abs(diff)
    return tf.reduce_mean(tf.reduce_sum(tf.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta), axis=[1, 2]))


def wing_loss(diff, w: float = 10.0, epsilon: float = 2.0):
    """Wing loss (Feng et al. 2018) on each coordinate: w ln(1 + |x|/eps) below w, |x| - C above."""
    return tf.reduce_mean(tf.reduce_sum(wing(diff, w, epsilon), axis=[1, 2]))


def wing(diff, w: float = 10.0, epsilon: float = 2.0):
    """Elementwise Wing loss: w ln(1 + |x| / eps) for |x| < w, else |x| - C, C = w - w ln(1 + w / eps)."""
    a = tf.abs(diff)
    c = w - w * math.log(1.0 + w / epsilon)
    return tf.where(a < w, w * tf.math.log1p(a / epsilon), a - c)


def pfld_loss(diff, pose_pred, pose_true, balance_weight, angle_weight_offset: float = 1.0, distance: str = "l2"):
    """PFLD: per sample, point distances x (offset + sum_3 (1 - cos(angle error))) x balance weight.

    diff (N, K, 2), pose_pred/pose_true (N, 3) radians, balance_weight (N,) > 0. With offset 0 this is the
    paper's formula, whose landmark term vanishes once the pose net is exact; offset 1 keeps it alive.
    distance: "l2", the summed squared distances of the paper, or "l1", the summed absolute coordinate errors.
    """
    if distance not in ("l1", "l2"):
        raise ValueError(f"pfld distance {distance!r}; choose l1 or l2")
    angle_weight = angle_weight_offset + tf.reduce_sum(1.0 - tf.cos(pose_pred - pose_true), axis=1)
    per_sample = tf.reduce_sum(tf.square(diff) if distance == "l2" else tf.abs(diff), axis=[1, 2])
    return tf.reduce_mean(angle_weight * balance_weight * per_sample)


def pipnet_loss(outputs: dict, targets: dict, codec, score_weight=10.0, offset_weight=1.0, neighbor_weight=1.0):
    """score_weight x MSE of the score maps + L1 of own and neighbour offsets at the ground-truth cells.

    outputs: the PIPNet model's dict; targets: codec.encode batched (score (N, G, G, K), offset (N, K, 2),
    neighbor_offset (N, K, C, 2)). Offsets are in cell units.
    """
    score_mse = tf.reduce_mean(tf.square(outputs["score"] - targets["score"]))
    cell = codec.best_cells(targets["score"])  # the ground-truth cells (targets are one-hot)
    own = tf.concat([codec.values_at(outputs["offset_x"], cell), codec.values_at(outputs["offset_y"], cell)], -1)
    neighbors = tf.stack([codec.values_at(outputs["neighbor_x"], cell),
                          codec.values_at(outputs["neighbor_y"], cell)], axis=-1)
    own_l1 = tf.reduce_mean(tf.abs(own - targets["offset"]))
    neighbor_l1 = tf.reduce_mean(tf.abs(neighbors - targets["neighbor_offset"]))
    return score_weight * score_mse + offset_weight * own_l1 + neighbor_weight * neighbor_l1


LARGE_YAW_DEG = 30.0


def attribute_classes(attributes, pose_rad):
    """PFLD balance classes per sample: attributes (..., 6) with -1 unknown, pose_rad (..., 3) -> (..., 7) 0/1.

    Classes 0-5 are the attribute flags (0 = pose, 1 = expression, ... as in WFLW); an unknown pose flag is
    replaced by |yaw| > LARGE_YAW_DEG. Class 6 is "plain": a sample with no flag. Every sample has a class.
    """
    attributes = tf.cast(attributes, tf.int32)
    flags = attributes > 0
    large_yaw = (attributes[..., :1] < 0) & (tf.abs(pose_rad[..., 1:2]) > math.radians(LARGE_YAW_DEG))
    flags = tf.concat([flags[..., :1] | large_yaw, flags[..., 1:]], axis=-1)
    plain = ~tf.reduce_any(flags, axis=-1, keepdims=True)
    return tf.cast(tf.concat([flags, plain], axis=-1), tf.float32)


def balance_table(attributes: np.ndarray, pose_rad: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Per-class weights (7,) from the training set: inverse class frequency N / count, capped at `cap`, scaled so
    that the sample weights (sum over a sample's classes) average 1. The public PFLD code gives plain samples 0;
    here they are a class of their own, so every weight is positive. The cap matters on small sets: 3 large-yaw
    faces among 1,107 would weigh 370x a plain face and dominate every batch they are in (PFLD diverged so)."""
    classes = attribute_classes(attributes, np.asarray(pose_rad, np.float32)).numpy()
    counts = classes.sum(axis=0)
    inverse = np.where(counts > 0, np.minimum(len(classes) / np.maximum(counts, 1.0), cap), 0.0)
    return (inverse / (classes @ inverse).mean()).astype(np.float32)


def balance_weight(attributes, pose_rad, table):
    """Sample weight(s) (...,) from attributes (..., 6), pose_rad (..., 3) and a balance_table (7,)."""
    return tf.reduce_sum(attribute_classes(attributes, pose_rad) * table, axis=-1)


def regression_loss(config, diff):
    """The configured coordinate loss (l2, l1, wing, smooth_l1) on diff (N, K, 2) already in loss units."""
    losses = {"l2": lambda d: l2_loss(d), "l1": lambda d: l1_loss(d),
              "wing": lambda d: wing_loss(d, config.wing_w, config.wing_epsilon),
              "smooth_l1": lambda d: smooth_l1_loss(d, config.smooth_l1_beta)}
    if config.name not in losses:
        raise ValueError(f"loss {config.name!r} is not a regression loss; choose from {sorted(losses)}")
    return losses[config.name](diff)


def landmark_loss(config, codec, outputs: dict, targets: dict):
    """The configured loss of a model's outputs against codec targets (plus "pose", "balance" for PFLD)."""
    if config.name == "pipnet":
        return pipnet_loss(outputs, targets, codec, config.score_weight, config.offset_weight, config.neighbor_weight)
    diff = config.scale * (codec.decode(outputs) - codec.decode(targets))
    if config.name == "pfld":
        if "pose" not in outputs:
            raise ValueError("loss pfld trains PFLD's pose subnet, which this model was built without: set "
                             "model_args.pose_subnet: true")
        return pfld_loss(diff, outputs["pose"], targets["pose"], targets["balance"], config.angle_weight_offset,
                         config.pfld_distance)
    return regression_loss(config, diff)


# ---------------------------------------------------------------- detection (DBFace, facekit.codecs.centernet)

def centernet_focal_loss(heatmap, target, pos_weight, keep, num_faces, alpha: float = 2.0, beta: float = 4.0):
    """CenterNet focal loss with DBFace's weighted positives; every argument (N, h, w, 1) but num_faces, the
    number of faces in the batch. Positive term log(p) (1 - p)^alpha x pos_weight (the size-weighted radius-2
    window), negative term log(1 - p) p^alpha (1 - y)^beta where y < 1; both times keep, summed, divided by
    max(num_faces, 1); p is clamped to [1e-4, 1 - 1e-4]."""
    p = tf.clip_by_value(heatmap, 1e-4, 1 - 1e-4)
    positive = tf.math.log(p) * (1 - p) ** alpha * pos_weight
    negative = tf.math.log(1 - p) * p ** alpha * (1 - target) ** beta * tf.cast(target < 1, p.dtype)
    return -tf.reduce_sum((positive + negative) * keep) / tf.maximum(num_faces, 1.0)


def giou(boxes_a, boxes_b):
    """Generalised IoU of xyxy boxes (..., 4) -> (...); no +1 pixel terms (continuous coordinates)."""
    area_a = (boxes_a[..., 2] - boxes_a[..., 0]) * (boxes_a[..., 3] - boxes_a[..., 1])
    area_b = (boxes_b[..., 2] - boxes_b[..., 0]) * (boxes_b[..., 3] - boxes_b[..., 1])
    inter_wh = tf.maximum(tf.minimum(boxes_a[..., 2:], boxes_b[..., 2:]) - tf.maximum(boxes_a[..., :2],
                                                                                    boxes_b[..., :2]), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = area_a + area_b - inter
    hull_wh = tf.maximum(boxes_a[..., 2:], boxes_b[..., 2:]) - tf.minimum(boxes_a[..., :2], boxes_b[..., :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return inter / tf.maximum(union, 1e-9) - (hull - union) / tf.maximum(hull, 1e-9)


def giou_loss(boxes_pred, boxes_true, weight):
    """Weighted mean of 1 - GIoU over the cells, weight (..., 1) (0: no target); boxes (..., 4)."""
    weight = weight[..., 0]
    return tf.reduce_sum((1 - giou(boxes_pred, boxes_true)) * weight) / tf.maximum(tf.reduce_sum(weight), 1e-6)


def detection_loss(config, codec, outputs: dict, targets: dict) -> dict:
    """DBFace's loss: focal + giou_weight x GIoU (decoded boxes) + landmark_weight x Wing (summed over the ten
    coordinates, averaged over faces with landmarks). Returns the three parts and their weighted "total"."""
    focal = centernet_focal_loss(outputs["heatmap"], targets["heatmap"], targets["pos_weight"], targets["keep"],
                                 tf.reduce_sum(targets["num_faces"]))
    box = giou_loss(codec.decode_boxes(outputs["box"]), targets["box"], targets["box_weight"])
    mask = targets["landmark_mask"]
    marks = tf.reduce_sum(wing(outputs["landmarks"] - targets["landmarks"], config.wing_w, config.wing_epsilon)
                          * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
    total = focal + config.giou_weight * box + config.landmark_weight * marks
    return {"total": total, "focal": focal, "giou": box, "wing": marks}
