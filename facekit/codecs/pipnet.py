"""Pixel-in-Pixel (PIPNet) codec: score map + in-cell offsets + offsets of each landmark's mean-shape neighbours.

Frame: a crop-normalised point p in [0, 1] lies at p * G in grid units (G cells a side); its cell is floor(p * G)
clipped to the grid and its offset is p * G - cell. Landmark k also predicts, from its own cell, where its C
nearest mean-shape neighbours are. Decoding takes each landmark's best cell and averages its own prediction with
every prediction that other landmarks make of it, via a fixed (K*C, K) matrix, so it is plain TF ops that TFLite
converts with builtins only.
"""
from __future__ import annotations

import numpy as np


def mean_shape_neighbors(mean_shape: np.ndarray, num_neighbors: int) -> np.ndarray:
    """mean_shape (K, 2) -> (K, C) int indices of each point's C nearest other points, nearest first."""
    dist = np.linalg.norm(mean_shape[:, None] - mean_shape[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1, kind="stable")[:, :num_neighbors].astype(np.int32)


class PipnetCodec:
    kind = "pipnet"

    def __init__(self, grid: int, mean_shape: np.ndarray, neighbors: np.ndarray):
        self.grid = int(grid)
        self.mean_shape = np.asarray(mean_shape, np.float32)
        self.neighbors = np.asarray(neighbors, np.int32)
        self.num_points, self.num_neighbors = self.neighbors.shape
        gather = np.zeros((self.num_points * self.num_neighbors, self.num_points), np.float32)
        gather[np.arange(gather.shape[0]), self.neighbors.reshape(-1)] = 1.0
        self._vote = gather                                   # (K*C, K): prediction i votes for landmark j
        self._votes_per_point = 1.0 + gather.sum(axis=0)      # own prediction + neighbours' (K,)

    @classmethod
    def fit(cls, num_points: int, train_points_norm, grid: int = 8, num_neighbors: int = 10):
        """Mean shape and neighbours from the training points (N, K, 2)."""
        if train_points_norm is None:
            raise ValueError("PIPNet codec needs the training points to compute its mean shape")
        points = np.asarray(train_points_norm, np.float32)
        if points.ndim != 3 or points.shape[1:] != (num_points, 2):
            raise ValueError(f"PIPNet codec: training points of shape {points.shape}, expected (N, {num_points}, 2)")
        if not 1 <= num_neighbors < num_points:
            raise ValueError(f"PIPNet codec: num_neighbors={num_neighbors} must be in [1, {num_points - 1}]")
        mean_shape = points.mean(axis=0)
        return cls(grid, mean_shape, mean_shape_neighbors(mean_shape, num_neighbors))

    @classmethod
    def from_dict(cls, values: dict):
        return cls(values["grid"], np.array(values["mean_shape"]), np.array(values["neighbors"]))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "num_points": self.num_points, "grid": self.grid,
                "num_neighbors": self.num_neighbors, "mean_shape": self.mean_shape.round(6).tolist(),
                "neighbors": self.neighbors.tolist()}

    @property
    def build_args(self) -> dict:
        return {"num_neighbors": self.num_neighbors}

    def encode(self, points_norm):
        """points_norm (K, 2) -> score (G, G, K) one-hot at each landmark's cell, offset (K, 2) in cells,
        neighbor_offset (K, C, 2): neighbour's position minus this landmark's cell corner, in cells."""
        import tensorflow as tf

        g = self.grid
        p = tf.cast(points_norm, tf.float32) * g
        cell = tf.clip_by_value(tf.floor(p), 0.0, g - 1.0)
        index = tf.cast(cell[:, 1] * g + cell[:, 0], tf.int32)
        score = tf.reshape(tf.transpose(tf.one_hot(index, g * g)), [g, g, self.num_points])
        neighbor_offset = tf.gather(p, self.neighbors) - cell[:, None, :]
        return {"score": score, "offset": p - cell, "neighbor_offset": neighbor_offset}

    def best_cells(self, score):
        """score (N, G, G, K) -> (N, K) int32 flat index (row * G + column) of each landmark's highest cell."""
        import tensorflow as tf

        flat = tf.reshape(score, [-1, self.grid * self.grid, self.num_points])
        return tf.argmax(flat, axis=1, output_type=tf.int32)

    def values_at(self, maps, index):
        """maps (N, G, G, K*m) and index (N, K) each landmark's flat cell -> the values there (N, K, m).

        A gather, not a one-hot mask summed over cells: TFLite's int8 ONE_HOT writes its 0 as the quantized
        value 0 (0.5 after dequantising), which turned the mask into an average of every cell."""
        import tensorflow as tf

        k = self.num_points
        flat = tf.reshape(maps, [-1, self.grid * self.grid, k, maps.shape[-1] // k])
        return tf.gather(tf.transpose(flat, [0, 2, 1, 3]), index, axis=2, batch_dims=2)

    def decode(self, outputs: dict):
        """Model outputs {score, offset_x, offset_y (N, G, G, K), neighbor_x, neighbor_y (N, G, G, K*C)}
        -> points_norm (N, K, 2)."""
        import tensorflow as tf

        g, k, c = self.grid, self.num_points, self.num_neighbors
        index = self.best_cells(outputs["score"])                                    # (N, K)
        cell = tf.stack([tf.cast(index % g, tf.float32), tf.cast(index // g, tf.float32)], axis=-1)
        own = cell + tf.concat([self.values_at(outputs["offset_x"], index),
                                self.values_at(outputs["offset_y"], index)], axis=-1)  # (N, K, 2)
        votes = cell[:, :, None, :] + tf.stack([self.values_at(outputs["neighbor_x"], index),
                                                self.values_at(outputs["neighbor_y"], index)], axis=-1)
        votes = tf.reshape(votes, [-1, k * c, 2])                                   # (N, K*C, 2)
        # weights 1 / votes, applied before summing: an int8 model never holds a sum of ~20 votes (its range
        # would cost the average its resolution)
        share = 1.0 / self._votes_per_point
        voted = tf.matmul(tf.transpose(votes, [0, 2, 1]), tf.constant(self._vote * share))  # (N, 2, K)
        return (own * tf.constant(share)[None, :, None] + tf.transpose(voted, [0, 2, 1])) / g
