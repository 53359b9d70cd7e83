"""PFLD: MobileNetV2 inverted-residual backbone, multi-scale landmark head, and an auxiliary pose subnet.

The pose output ("pose": pitch, yaw, roll in radians) exists for training only; export drops it. The width
multiplier scales the blocks' output channels through `make_divisible` (pfld = 1.0, pfld_025 = 0.25); see
build_pfld for the layout questions the paper leaves open.
"""
from __future__ import annotations

import keras
from keras import layers

from facekit.registry import ModelSpec, register
from models.backbones import batch_norm, conv_bn, inverted_residual, make_divisible, named_model, preprocess


def pose_estimator(features):
    """Auxiliary net on the stride-4 features -> (N, 3) Euler angles."""
    x = conv_bn(features, 128, 3, 2, name="aux1")
    x = conv_bn(x, 128, 3, 1, name="aux2")
    x = conv_bn(x, 32, 3, 2, name="aux3")
    x = conv_bn(x, 128, 7, 1, name="aux4")
    x = layers.GlobalMaxPooling2D(name="aux_pool")(x)
    x = layers.Dense(32, name="aux_fc1")(x)
    return layers.Dense(3, name="aux_fc2")(x)


def build_pfld(num_points: int = 68, input_size: int = 112, width: float = 1.0, fixed_expansion: bool = True,
               flatten_scales: bool = False, pose_subnet: bool = True) -> keras.Model:
    """(N, S, S, 3) RGB in [0, 255] -> {"landmarks": (N, 2K), "pose": (N, 3)}; no "pose" without pose_subnet.

    Only PFLD's loss (loss.name: pfld) trains the pose subnet; with any other loss it would be computed every
    step for nothing (37% of pfld_025's forward multiply-adds, 17% of pfld's), so the configs leave it out.

    width scales every block's output channels. fixed_expansion keeps the inverted residuals' expanded widths
    at their 1.0x values (128, 512, 256), as the PFLD authors' TensorFlow code does; otherwise they scale too.
    flatten_scales feeds S1 (14 x 14) and S2 (7 x 7) to the FC whole, as the authors' code does, instead of
    average-pooled. Exported parameters, 0.25x / 1.0x: both on (the reading closest to the paper's 2.1 MB for
    0.25x) 0.59 M / 1.87 M; the default (fixed expansion, pooled scales) 0.33 M / 1.24 M; pooled and scaled (the
    popular PyTorch port) 0.10 M at 0.25x. Pooled is the default because it trains: the flattened FC has 1,992
    inputs at 0.25x (4,832 at 1.0x) against 48, and Adam moves every weight by about the learning rate, so the
    output jumps 40x further a step: at 1e-3 it did not learn (validation NME 0.42 after 7 epochs on HELEN),
    at 1e-4 it crawled (0.15 after 12), where pooled reached 0.112 after 12 epochs at 1e-3."""
    def c(channels):
        return make_divisible(channels * width)

    def wide(channels):
        return channels if fixed_expansion else None

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_bn(preprocess(inputs), c(64), 3, 2, name="conv1")
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="conv2_dw")(x)
    x = layers.ReLU(name="conv2_relu")(batch_norm("conv2_bn")(x))
    for i in range(5):
        x = inverted_residual(x, c(64), 2 if i == 0 else 1, 2, name=f"conv3_{i + 1}", expanded=wide(128))
    aux_features = x
    x = inverted_residual(x, c(128), 2, 2, name="conv4_1", expanded=wide(128))
    for i in range(6):
        x = inverted_residual(x, c(128), 1, 4, name=f"conv5_{i + 1}", expanded=wide(512))
    s1 = inverted_residual(x, c(16), 1, 2, name="conv6_1", expanded=wide(256))
    s2 = conv_bn(s1, c(32), 3, 2, name="conv7")
    s3 = conv_bn(s2, c(128), s2.shape[1], 1, padding="valid", name="conv8")
    if flatten_scales:
        scales = [layers.Flatten(name="flatten_s1")(s1), layers.Flatten(name="flatten_s2")(s2)]
    else:
        scales = [layers.GlobalAveragePooling2D(name="pool_s1")(s1), layers.GlobalAveragePooling2D(name="pool_s2")(s2)]
    scales.append(layers.Flatten(name="flatten_s3")(s3))
    landmarks = layers.Dense(2 * num_points, name="fc")(layers.Concatenate(name="multiscale")(scales))
    outputs = {"landmarks": landmarks}
    if pose_subnet:
        outputs["pose"] = pose_estimator(aux_features)
    return named_model(inputs, outputs, f"pfld_{width:g}".replace(".", ""))


def build_pfld_025(num_points: int = 68, input_size: int = 112, width: float = 0.25, **layout) -> keras.Model:
    """PFLD 0.25x; layout: build_pfld's fixed_expansion, flatten_scales and pose_subnet."""
    return build_pfld(num_points, input_size, width, **layout)


register(ModelSpec("pfld", build_pfld, codec="regression", config="pfld.yaml", training_only_outputs=("pose",)))
register(ModelSpec("pfld_025", build_pfld_025, codec="regression", config="pfld_025.yaml",
                   training_only_outputs=("pose",)))
