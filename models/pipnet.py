"""Pixel-in-Pixel Net: a stride-32 backbone and five 1x1 heads (score map, x/y offsets, neighbours' x/y offsets).

Outputs at a G x G grid (G = input / 32): score (N, G, G, K), offset_x/offset_y (N, G, G, K),
neighbor_x/neighbor_y (N, G, G, K*C). Decoding lives in facekit.codecs.pipnet.
"""
from __future__ import annotations

import keras
from keras import layers

from facekit.registry import ModelSpec, register
from models.backbones import mobilenetv2_features, named_model, preprocess, resnet18_features

BACKBONES = {"resnet18": resnet18_features, "mobilenetv2": mobilenetv2_features}


def build_pipnet(num_points: int = 68, input_size: int = 256, num_neighbors: int = 10, backbone: str = "resnet18",
                 width: float = 1.0) -> keras.Model:
    if backbone not in BACKBONES:
        raise ValueError(f"pipnet: unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    if input_size % 32:
        raise ValueError(f"pipnet: input_size {input_size} is not a multiple of the stride 32")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = BACKBONES[backbone](preprocess(inputs), width)

    def head(name, channels):
        return layers.Conv2D(channels, 1, name=f"{name}_head")(x)

    k, c = num_points, num_neighbors
    return named_model(inputs, {"score": head("score", k), "offset_x": head("offset_x", k),
                                "offset_y": head("offset_y", k), "neighbor_x": head("neighbor_x", k * c),
                                "neighbor_y": head("neighbor_y", k * c)}, f"pipnet_{backbone}")


register(ModelSpec("pipnet", build_pipnet, codec="pipnet", config="pipnet.yaml"))
