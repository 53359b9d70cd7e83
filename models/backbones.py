"""Building blocks shared by the landmark models: width rounding, conv-BN-act, inverted residuals, SE bottlenecks,
ResNet basic blocks. Functional Keras 3; every block takes and returns a tensor."""
from __future__ import annotations

import keras
from keras import layers

from facekit.distribute import replicas


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a width-multiplied channel count to a multiple of `divisor`, never losing more than 10%."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


# PyTorch's BN momentum 0.1 (Keras 0.9): moving statistics follow the weights within ~50 steps, which matters for
# runs of a few thousand steps; Keras' default 0.99 left eval-mode outputs near the mean shape for hundreds of steps.
BN_MOMENTUM = 0.9


def batch_norm(name: str):
    """BatchNormalization; synchronised over replicas when built under a strategy with several, so that the
    statistics are those of the global batch, as on one device (facekit.distribute)."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name, synchronized=replicas() > 1)


def preprocess(inputs, name: str = "preprocess"):
    """RGB pixel values in [0, 255] -> [-1, 1]. Part of every model, so exported graphs take raw pixels."""
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)(inputs)


def conv_bn(x, filters: int, kernel: int = 3, stride: int = 1, activation: str | None = "relu",
            padding: str = "same", name: str = ""):
    x = layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x) if activation else x


def inverted_residual(x, filters: int, stride: int, expansion: float, name: str, expanded: int | None = None):
    """MobileNetV2 block: 1x1 expand (to `expanded` channels, default input channels x expansion), 3x3 depthwise,
    1x1 linear project; residual when shapes match."""
    in_channels = x.shape[-1]
    expanded = expanded or int(round(in_channels * expansion))
    y = conv_bn(x, expanded, 1, name=f"{name}_expand") if expanded != in_channels else x
    y = layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = batch_norm(f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu6")(y)
    y = conv_bn(y, filters, 1, activation=None, name=f"{name}_project")
    if stride == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def squeeze_excite(x, ratio: int = 16, name: str = ""):
    """Channel gate: global average pool, FC down to channels/ratio, ReLU, FC up, sigmoid, scale."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = layers.Dense(max(1, channels // ratio), activation="relu", name=f"{name}_se_down")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_se_up")(s)
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def se_bottleneck(x, filters: int, stride: int, se_ratio: int, name: str):
    """1x1 reduce (filters/4), 3x3 (strided), 1x1 up to filters, SE gate, residual add, ReLU."""
    y = conv_bn(x, filters // 4, 1, name=f"{name}_reduce")
    y = conv_bn(y, filters // 4, 3, stride, name=f"{name}_conv3")
    y = conv_bn(y, filters, 1, activation=None, name=f"{name}_expand")
    y = squeeze_excite(y, se_ratio, name)
    if stride != 1 or x.shape[-1] != filters:
        x = conv_bn(x, filters, 1, stride, activation=None, name=f"{name}_shortcut")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def basic_block(x, filters: int, stride: int, name: str):
    """ResNet-18 block: two 3x3 convs with a residual (1x1 strided projection when shapes change)."""
    y = conv_bn(x, filters, 3, stride, name=f"{name}_a")
    y = conv_bn(y, filters, 3, activation=None, name=f"{name}_b")
    if stride != 1 or x.shape[-1] != filters:
        x = conv_bn(x, filters, 1, stride, activation=None, name=f"{name}_shortcut")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def resnet18_features(x, width: float = 1.0, name: str = "resnet18"):
    """Stride-32 ResNet-18 trunk: 7x7/2 stem, 3x3/2 max pool, four stages of two basic blocks."""
    x = conv_bn(x, make_divisible(64 * width), 7, 2, name=f"{name}_stem")
    x = layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool")(x)
    for stage, (filters, stride) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2))):
        for block in range(2):
            x = basic_block(x, make_divisible(filters * width), stride if block == 0 else 1,
                            name=f"{name}_s{stage + 1}b{block + 1}")
    return x


# (expansion, channels, repeats, first stride) of MobileNetV2
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                      (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenetv2_features(x, width: float = 1.0, name: str = "mobilenetv2"):
    """Stride-32 MobileNetV2 trunk built from `inverted_residual`, ending in a 1x1 conv to 1280 * max(1, width)."""
    x = conv_bn(x, make_divisible(32 * width), 3, 2, activation="relu6", name=f"{name}_stem")
    for stage, (expansion, channels, repeats, stride) in enumerate(MOBILENETV2_STAGES):
        for block in range(repeats):
            x = inverted_residual(x, make_divisible(channels * width), stride if block == 0 else 1, expansion,
                                  name=f"{name}_s{stage + 1}b{block + 1}")
    return conv_bn(x, make_divisible(1280 * max(1.0, width)), 1, activation="relu6", name=f"{name}_head")


def named_model(inputs, outputs: dict, name: str) -> keras.Model:
    """A functional model whose outputs are a dict keyed by name (each output layer carries that name). Outputs
    are float32 under any dtype policy, so losses and decoding never see float16 (mixed precision)."""
    outputs = {key: layers.Identity(name=key, dtype="float32")(value) for key, value in outputs.items()}
    return keras.Model(inputs, outputs, name=name)
