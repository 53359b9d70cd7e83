"""Direct coordinate regression (SENet, PFLD): the target is the flat vector of crop-normalised (x, y)."""
from __future__ import annotations


class RegressionCodec:
    kind = "regression"

    def __init__(self, num_points: int):
        self.num_points = num_points

    @classmethod
    def fit(cls, num_points: int, train_points_norm=None):
        return cls(num_points)

    @classmethod
    def from_dict(cls, values: dict):
        return cls(values["num_points"])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "num_points": self.num_points}

    @property
    def build_args(self) -> dict:
        """Arguments the model builder needs from the codec."""
        return {}

    def encode(self, points_norm):
        """points_norm (K, 2) -> {"landmarks": (2K,)} = x0, y0, x1, y1, ..."""
        import tensorflow as tf

        return {"landmarks": tf.reshape(points_norm, [2 * self.num_points])}

    def decode(self, outputs: dict):
        """{"landmarks": (N, 2K)} -> points_norm (N, K, 2)."""
        import tensorflow as tf

        return tf.reshape(outputs["landmarks"], [-1, self.num_points, 2])
