"""Codecs: model targets from crop-normalised points (encode, in tf.data) and points from model outputs
(decode, in TF ops so it can be part of an exported graph). One module per target family."""
from __future__ import annotations

import numpy as np

from facekit.codecs.centernet import CenterNetCodec
from facekit.codecs.pipnet import PipnetCodec
from facekit.codecs.regression import RegressionCodec

CODECS = {"regression": RegressionCodec, "pipnet": PipnetCodec, "centernet": CenterNetCodec}


def make_codec(kind: str, num_points: int, train_points_norm: np.ndarray | None = None, **args):
    """A codec of `kind` for `num_points` landmarks; PIPNet derives its mean shape from train_points_norm (N, K, 2)."""
    if kind not in CODECS:
        raise ValueError(f"unknown codec {kind!r}; choose from {sorted(CODECS)}")
    return CODECS[kind].fit(num_points, train_points_norm, **args)


def codec_from_dict(values: dict):
    """Rebuild a codec saved with `codec.to_dict()` (the run's codec.json)."""
    return CODECS[values["kind"]].from_dict(values)
