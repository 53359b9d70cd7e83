"""DBFace's CenterNet-style targets and decoding, in TF ops (encode runs in tf.data, decode in exported graphs).

Grid: cell (i, j) of the stride-s output covers input pixels [s j, s j + s) x [s i, s i + s); its anchor is the
cell centre (s (j + 0.5), s (i + 0.5)) in the project's continuous convention. Per face (box in input pixels):
- heatmap: a truncated Gaussian at the centre cell, radius box side / (4 s) cells and sigma (2 radius + 1) / 6
  per axis; the map is the maximum over faces. Faces under keep_size x keep_size pixels are not drawn: their
  window is ignored (keep = 0) rather than taught as background.
- pos_weight: a radius-2 Gaussian at the centre scaled by 1 + clip(10 (max side - 25) / 275, 0, 10): the focal
  loss's positive term, heavier for larger faces (DBFace's fix for CenterNet's weak large faces).
- box: the face box in grid units at every cell of its window whose Gaussian is >= 0.3, and at its centre;
  a cell claimed by several faces takes the one with the smallest (1 - g) x distance (TTFNet). Faces under
  min_box_size pixels a side get no box target. box_weight is 1 / (cells the face owns), so every face weighs 1
  in the box loss: with one weight per cell (the reference's plain mean) a 200-pixel face owns ~150 cells and a
  32-pixel face ~9, and small faces' boxes starve (measured: at 32-64 px, 98% of faces found at IoU 0.3, 82% at 0.5).
- landmarks, for faces with all five points, by landmark_code:
  "log" (the reference's): at the centre cell only, log_code(point / s - anchor) / 4 with log_code(v) = v / e for
  |v| < e, else sign(v) ln|v| (offsets in cells, not divided by the box size);
  "box": at every cell the face owns for its box, with the same per-face weights (landmark_mask = box_weight),
  (point - anchor) / (box width, height). The decoded peak is often a cell beside the centre, and an offset in
  box units is the same task at every face size: the centre-cell log code left matched AFW faces at 0.3-0.45 of
  the inter-ocular distance.
Decoding: 3x3 max-pool peaks, top-K, boxes = anchor + (-l, -t, r, b) cells, points = exp_code(4 v) + anchor
("log") or anchor + v x the decoded box's (width, height) ("box").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import tensorflow as tf

E = math.e


def log_code(v):
    return tf.where(tf.abs(v) < E, v / E, tf.sign(v) * tf.math.log(tf.maximum(tf.abs(v), 1e-12)))


def exp_code(v):
    """Inverse of log_code."""
    return tf.where(tf.abs(v) < 1.0, v * E, tf.sign(v) * tf.exp(tf.abs(v)))


def _max_over_faces(maps):
    """(M, h, w) -> (h, w) maximum, 0 when M is 0."""
    return tf.reduce_max(tf.concat([tf.zeros([1, tf.shape(maps)[1], tf.shape(maps)[2]]), maps], axis=0), axis=0)


@dataclass(frozen=True)
class CenterNetCodec:
    kind = "centernet"
    stride: int = 4
    keep_size: float = 12.0       # faces under keep_size^2 px^2 are ignored, not negatives
    min_box_size: float = 12.0    # faces under min_box_size^2 px^2 get no box target (the reference: 5; with
    # per-face weights, a crowd's 5-12 px faces, never detected, would outweigh its real faces in the box loss)
    box_gaussian: float = 0.3     # box targets where the face's Gaussian is at least this
    weight_sizes: tuple = (25.0, 300.0)  # face sides (px) where the positive weight starts rising / saturates
    max_weight: float = 10.0
    top_k: int = 256
    landmark_code: str = "log"    # "log" (centre cell, the reference's) or "box" (owned cells, box units)

    def __post_init__(self):
        if self.landmark_code not in ("log", "box"):
            raise ValueError(f"landmark_code must be 'log' or 'box', got {self.landmark_code!r}")

    @classmethod
    def fit(cls, num_points=None, train_points_norm=None, **args):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})

    @classmethod
    def from_dict(cls, values: dict):
        return cls.fit(**{k: v for k, v in values.items() if k != "kind"})

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @property
    def build_args(self) -> dict:
        return {}

    def anchors(self, height: int, width: int):
        """Cell centres in cells: x (1, w), y (h, 1)."""
        xs = tf.range(width // self.stride, dtype=tf.float32)[None, :] + 0.5
        ys = tf.range(height // self.stride, dtype=tf.float32)[:, None] + 0.5
        return xs, ys

    def encode(self, boxes_xyxy, landmarks_px, height: int, width: int) -> dict:
        """boxes (M, 4) input pixels (rows with zero area are padding), landmarks (M, 5, 2) (NaN: absent) for an
        input of height x width -> dict of (h, w, C) float32 maps: heatmap, pos_weight, keep (1), box (4, grid
        units xyxy), box_weight (1, 1 / cells of the owning face), landmarks (10: x1..x5, y1..y5), landmark_mask (1);
        num_faces () counted."""
        s = float(self.stride)
        h, w = height // self.stride, width // self.stride
        boxes = tf.reshape(tf.cast(boxes_xyxy, tf.float32), [-1, 4])
        size = boxes[:, 2:] - boxes[:, :2]
        area = size[:, 0] * size[:, 1]
        exists = (size[:, 0] > 0) & (size[:, 1] > 0)
        kept = exists & (area >= self.keep_size ** 2)
        centre = (boxes[:, :2] + boxes[:, 2:]) / (2 * s)
        cell = tf.clip_by_value(tf.floor(centre), 0.0, [w - 1.0, h - 1.0])  # (M, 2) centre cell
        xs, ys = self.anchors(height, width)
        dx = xs[None] - 0.5 - cell[:, 0, None, None]  # (M, 1, w) integer cell offsets
        dy = ys[None] - 0.5 - cell[:, 1, None, None]  # (M, h, 1)
        radius = size / (4 * s)
        sigma = (2 * radius + 1) / 6
        window = (tf.abs(dx) <= radius[:, 0, None, None]) & (tf.abs(dy) <= radius[:, 1, None, None])
        gauss = tf.exp(-dx ** 2 / (2 * sigma[:, 0, None, None] ** 2) - dy ** 2 / (2 * sigma[:, 1, None, None] ** 2))
        gauss = tf.where(window & exists[:, None, None], gauss, 0.0)  # (M, h, w)
        heatmap = _max_over_faces(tf.where(kept[:, None, None], gauss, 0.0))
        ignored = tf.reduce_any((gauss > 0) & ~kept[:, None, None], axis=0)
        keep = tf.where(ignored & (heatmap <= 0), 0.0, 1.0)

        low, high = self.weight_sizes
        gamma = 1 + tf.clip_by_value((tf.reduce_max(size, axis=1) - low) / (high - low) * self.max_weight, 0.0,
                                     self.max_weight)
        near = (tf.abs(dx) <= 2) & (tf.abs(dy) <= 2)
        pos = tf.exp(-(dx ** 2 + dy ** 2) / (2 * (5 / 6) ** 2)) * gamma[:, None, None]
        pos_weight = _max_over_faces(tf.where(near & kept[:, None, None], pos, 0.0))

        boxed = exists & (area >= self.min_box_size ** 2)
        centre_cell = (dx == 0) & (dy == 0)
        claims = ((gauss >= self.box_gaussian) | centre_cell) & boxed[:, None, None]
        priority = tf.where(claims, (1 - gauss) * tf.sqrt(dx ** 2 + dy ** 2), float("inf"))
        owner = tf.argmin(tf.concat([priority, tf.fill([1, h, w], float("inf"))], 0), axis=0, output_type=tf.int32)
        owner = tf.where(tf.reduce_any(claims, axis=0), owner, tf.shape(boxes)[0])  # unclaimed: the zero row
        owned = tf.math.bincount(owner, minlength=tf.shape(boxes)[0] + 1, dtype=tf.float32)[:-1]  # (M,) cells
        box_weight = tf.gather(tf.concat([1 / tf.maximum(owned, 1.0), [0.0]], 0), owner)  # (h, w)
        box = tf.gather(tf.concat([boxes / s, tf.zeros([1, 4])], 0), owner)  # (h, w, 4)

        landmarks = tf.reshape(tf.cast(landmarks_px, tf.float32), [-1, 5, 2])
        marked = kept & tf.reduce_all(tf.math.is_finite(landmarks), axis=[1, 2])
        if self.landmark_code == "box":
            anchor = tf.stack([tf.broadcast_to(xs, [h, w]), tf.broadcast_to(ys, [h, w])], -1) * s  # (h, w, 2) px
            scale = tf.maximum(size, 1.0)
            padded = tf.concat([tf.where(marked[:, None, None], landmarks, 0.0), tf.zeros([1, 5, 2])], 0)
            points = tf.gather(padded, owner)  # (h, w, 5, 2)
            offsets = (points - anchor[:, :, None]) / tf.gather(tf.concat([scale, tf.ones([1, 2])], 0), owner)[
                :, :, None]
            landmark_mask = box_weight * tf.gather(tf.concat([tf.cast(marked, tf.float32), [0.0]], 0), owner)
            landmark_map = tf.where(landmark_mask[..., None] > 0,
                                    tf.concat([offsets[..., 0], offsets[..., 1]], axis=-1), 0.0)
        else:
            offsets = log_code(landmarks / s - (cell[:, None, :] + 0.5)) / 4  # (M, 5, 2)
            codes = tf.concat([offsets[..., 0], offsets[..., 1]], axis=1)  # (M, 10)
            where = tf.cast(tf.boolean_mask(cell, marked)[:, ::-1], tf.int32)  # (row, col)
            landmark_map = tf.scatter_nd(where, tf.boolean_mask(codes, marked), [h, w, 10])
            landmark_mask = tf.minimum(tf.scatter_nd(where, tf.ones([tf.shape(where)[0]]), [h, w]), 1.0)
        return {"heatmap": heatmap[..., None], "pos_weight": pos_weight[..., None], "keep": keep[..., None],
                "box": box, "box_weight": box_weight[..., None], "landmarks": landmark_map,
                "landmark_mask": landmark_mask[..., None],
                "num_faces": tf.reduce_sum(tf.cast(kept, tf.float32))}

    def decode_boxes(self, box):
        """box (N, h, w, 4) exp outputs (l, t, r, b cells) -> (N, h, w, 4) xyxy in grid units."""
        xs, ys = self.anchors(tf.shape(box)[1] * self.stride, tf.shape(box)[2] * self.stride)
        anchor = tf.stack([tf.broadcast_to(xs, tf.shape(box)[1:3]), tf.broadcast_to(ys, tf.shape(box)[1:3])], -1)
        return tf.concat([anchor - box[..., :2], anchor + box[..., 2:]], axis=-1)

    def decode(self, outputs: dict, top_k: int | None = None) -> dict:
        """Model outputs -> the top_k peaks per image (fewer when a fixed-size map has fewer cells): scores (N, K),
        boxes_xyxy (N, K, 4) and landmarks_px (N, K, 5, 2) in input pixels. Fixed-size, TF ops only (part of the
        exported graph)."""
        k = top_k or self.top_k
        heatmap = outputs["heatmap"]
        peaks = tf.where(tf.equal(heatmap, tf.nn.max_pool2d(heatmap, 3, 1, "SAME")), heatmap, 0.0)
        n, h, w = tf.shape(heatmap)[0], tf.shape(heatmap)[1], tf.shape(heatmap)[2]
        if heatmap.shape[1] and heatmap.shape[2]:  # a small static canvas has fewer cells than top_k
            k = min(k, heatmap.shape[1] * heatmap.shape[2])
        scores, index = tf.math.top_k(tf.reshape(peaks, [n, h * w]), k=k)
        rows, cols = tf.cast(index // w, tf.float32), tf.cast(index % w, tf.float32)
        ltrb = tf.gather(tf.reshape(outputs["box"], [n, h * w, 4]), index, batch_dims=1)
        codes = tf.gather(tf.reshape(outputs["landmarks"], [n, h * w, 10]), index, batch_dims=1)
        anchor = tf.stack([cols + 0.5, rows + 0.5], axis=-1)  # (N, K, 2) cells
        s = float(self.stride)
        boxes = tf.concat([anchor - ltrb[..., :2], anchor + ltrb[..., 2:]], axis=-1) * s
        codes = tf.stack([codes[..., :5], codes[..., 5:]], axis=-1)  # (N, K, 5, 2)
        if self.landmark_code == "box":
            points = anchor[:, :, None] * s + codes * (boxes[..., None, 2:] - boxes[..., None, :2])
        else:
            points = (exp_code(4 * codes) + anchor[:, :, None]) * s
        return {"scores": scores, "boxes_xyxy": boxes, "landmarks_px": points}
