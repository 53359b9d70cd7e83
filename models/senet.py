"""SE-ResNet landmark regressor (the TensorFlow+SENet recipe): bottleneck blocks with squeeze-and-excitation
gates, strided down-sampling, global pooling and a dense layer of 2K crop-normalised coordinates."""
from __future__ import annotations

import keras
from keras import layers

from facekit.registry import ModelSpec, register
from models.backbones import conv_bn, named_model, preprocess, se_bottleneck


def build_senet(num_points: int = 68, input_size: int = 128, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2),
                se_ratio: int = 16, dropout: float = 0.0) -> keras.Model:
    """(N, S, S, 3) RGB in [0, 255] -> {"landmarks": (N, 2K)} crop-normalised x0, y0, x1, y1, ..."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_bn(preprocess(inputs), widths[0] // 2, 3, 2, name="stem")
    for stage, (filters, repeats) in enumerate(zip(widths, blocks)):
        for block in range(repeats):
            x = se_bottleneck(x, filters, 2 if block == 0 else 1, se_ratio, name=f"stage{stage + 1}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return named_model(inputs, {"landmarks": layers.Dense(2 * num_points, name="fc")(x)}, "senet")


def build_senet_small(num_points: int = 68, input_size: int = 96, widths=(32, 64, 128, 256),
                      **layout) -> keras.Model:
    """SE-ResNet at half the widths on 96 px crops: a detector's five-point refiner (about 1/7 of senet's
    multiply-adds); layout: build_senet's blocks, se_ratio and dropout."""
    return build_senet(num_points, input_size, widths, **layout)


register(ModelSpec("senet", build_senet, codec="regression", config="senet.yaml"))
register(ModelSpec("senet_small", build_senet_small, codec="regression", config="senet_small.yaml"))
