"""DBFace: a single-stage, anchor-free face detector (CenterNet-style heads at stride 4).

MobileNetV3 trunk -> top-down path (nearest x2 upsample + 3x3 conv, lateral 1x1 convs) from stride 32 to 4 ->
SSH-style detect module -> three 1x1 heads: centre heatmap (sigmoid), box (exp of left, top, right, bottom in
stride units) and five landmarks (offsets from the cell, coded as the codec's landmark_code says:
facekit.codecs.centernet).

Two layouts with the reference code's channel plan (dlunion/DBFace, model/DBFace.py and train/small/dbface.py), and
one of ours for phones:
- `dbface`: MobileNetV3-Large trunk (15 bottlenecks), h-swish neck 24 channels wide, detect module 48 channels.
- `dbface_small` (Small-H): 9 ReLU bottlenecks, neck 64 wide, a 3x3 conv-BN-ReLU before each head (has_ext).
- `dbface_nano`: Small-H's trunk with the top-down path stopping at stride 8 and every 3x3 conv after the trunk
  depthwise-separable. At stride 4, Small-H's neck and heads are 93% of its 860 M multiply-adds at 256 x 256;
  nano's whole network is about a tenth of that, for 160-320 px letterboxes (codec stride 8).
Input: (N, H, W, 3) RGB in [0, 255], H and W multiples of 32 (None, None: any such size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from facekit.registry import ModelSpec, register
from models.backbones import batch_norm, named_model

# (kernel, expansion channels, output channels, activation, squeeze-excite, stride) per bottleneck
LARGE_BLOCKS = ((3, 16, 16, "relu", False, 1), (3, 64, 24, "relu", False, 2), (3, 72, 24, "relu", False, 1),
                (5, 72, 40, "relu", True, 2), (5, 120, 40, "relu", True, 1), (5, 120, 40, "relu", True, 1),
                (3, 240, 80, "hard_swish", False, 2), (3, 200, 80, "hard_swish", False, 1),
                (3, 184, 80, "hard_swish", False, 1), (3, 184, 80, "hard_swish", False, 1),
                (3, 480, 112, "hard_swish", True, 1), (3, 672, 112, "hard_swish", True, 1),
                (5, 672, 160, "hard_swish", True, 1), (5, 672, 160, "hard_swish", True, 2),
                (5, 960, 160, "hard_swish", True, 1))
SMALL_BLOCKS = ((3, 16, 16, "relu", False, 2), (3, 72, 24, "relu", False, 2), (3, 88, 24, "relu", False, 1),
                (5, 96, 40, "relu", True, 2), (5, 240, 40, "relu", True, 1), (5, 240, 40, "relu", True, 1),
                (5, 120, 48, "relu", True, 1), (5, 144, 48, "relu", True, 1), (5, 288, 96, "relu", True, 2))


@dataclass(frozen=True)
class Layout:
    blocks: tuple
    taps: tuple[int, ...]       # bottlenecks whose outputs feed the laterals, finest first (stride 4, 8, 16)
    top: tuple[int, ...]        # 1x1 conv widths after the last bottleneck (stride 32), before the neck width
    width: int                  # neck width
    activation: str             # of the neck, detect module and heads' extra convs
    se_gate: str                # squeeze-excite gate: "sigmoid" or "hard_sigmoid"
    large_context: bool         # detect module as in the large model (2x width out) or the small one (1x)
    has_ext: bool               # a 3x3 conv-BN-act before each 1x1 head
    separable: bool = False     # 3x3 convs after the trunk as depthwise 3x3 + BN + act, then 1x1 conv + BN + act


LAYOUTS = {
    "dbface": Layout(LARGE_BLOCKS, (2, 5, 12), (960, 320), 24, "hard_swish", "hard_sigmoid", True, False),
    "dbface_small": Layout(SMALL_BLOCKS, (0, 2, 7), (), 64, "relu", "sigmoid", False, True),
    "dbface_nano": Layout(SMALL_BLOCKS, (2, 7), (), 64, "relu", "sigmoid", False, True, separable=True),
}
HEATMAP_PRIOR = 0.01  # initial face probability of every cell, so the focal loss starts small


def conv_bn_act(x, filters: int, kernel: int, activation: str | None, name: str, stride: int = 1):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_act")(x) if activation else x


def conv3x3(x, filters: int, layout: Layout, name: str):
    """The 3x3 conv-BN-act of the neck, detect module and heads: plain, or depthwise-separable (layout.separable)."""
    if not layout.separable:
        return conv_bn_act(x, filters, 3, layout.activation, name)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.Activation(layout.activation, name=f"{name}_dw_act")(batch_norm(f"{name}_dw_bn")(x))
    return conv_bn_act(x, filters, 1, layout.activation, name)


def squeeze_excite(x, gate: str, name: str):
    """Global pool, 1x1 conv to channels/4 + BN + ReLU, 1x1 conv back + BN, gate, scale (MobileNetV3 style)."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
    s = conv_bn_act(s, channels // 4, 1, "relu", f"{name}_se_down")
    s = conv_bn_act(s, channels, 1, gate, f"{name}_se_up")
    return layers.Multiply(name=f"{name}_se_scale")([x, s])


def bottleneck(x, kernel, expansion, filters, activation, se, stride, gate, name):
    """1x1 expand, kxk depthwise (strided), 1x1 project, optional SE; residual (1x1 projected when the width
    changes) at stride 1 only."""
    y = conv_bn_act(x, expansion, 1, activation, f"{name}_expand")
    y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = layers.Activation(activation, name=f"{name}_dw_act")(batch_norm(f"{name}_dw_bn")(y))
    y = conv_bn_act(y, filters, 1, None, f"{name}_project")
    if se:
        y = squeeze_excite(y, gate, name)
    if stride != 1:
        return y
    shortcut = x if x.shape[-1] == filters else conv_bn_act(x, filters, 1, None, f"{name}_shortcut")
    return layers.Add(name=f"{name}_add")([y, shortcut])


def upsample(x, layout: Layout, name: str):
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    return conv3x3(x, layout.width, layout, name)


def detect_module(x, layout: Layout):
    """SSH detect module: a 3x3 branch next to a context branch of one and of two stacked 3x3 convs."""
    width = layout.width
    if layout.large_context:
        direct = conv3x3(x, width, layout, "detect_direct")
        context = conv3x3(x, width, layout, "context_in")
        half = width // 2
        one = layers.Lambda(lambda t: t[..., :half], name="context_split_a")(context)
        two = layers.Lambda(lambda t: t[..., half:], name="context_split_b")(context)
    else:
        direct = conv3x3(x, width // 2, layout, "detect_direct")
        one = two = conv3x3(x, width // 4, layout, "context_in")
    one = conv3x3(one, one.shape[-1], layout, "context_one")
    two = conv3x3(conv3x3(two, two.shape[-1], layout, "context_two_a"), two.shape[-1], layout, "context_two_b")
    return layers.Concatenate(name="detect")([direct, one, two])


def head(x, filters: int, layout: Layout, name: str, bias: float = 0.0):
    if layout.has_ext:
        x = conv3x3(x, x.shape[-1], layout, f"{name}_ext")
    return layers.Conv2D(filters, 1, name=f"{name}_head", kernel_initializer=keras.initializers.RandomNormal(0, 1e-3),
                         bias_initializer=keras.initializers.Constant(bias))(x)


def build_dbface(layout: str = "dbface", input_size: int | None = None) -> keras.Model:
    """(N, H, W, 3) RGB [0, 255] -> {"heatmap": (N, H/s, W/s, 1) in (0, 1), "box": (N, H/s, W/s, 4) > 0 (left,
    top, right, bottom in stride units), "landmarks": (N, H/s, W/s, 10) coded offsets (x1..x5, y1..y5)}; s is 4, or
    8 for dbface_nano."""
    spec = LAYOUTS[layout]
    inputs = keras.Input((input_size, input_size, 3), name="image")
    # CenterNet's per-channel mean and std on [0, 1] pixels, here in RGB order (the reference's are BGR)
    x = layers.Normalization(mean=[0.470 * 255, 0.447 * 255, 0.408 * 255],
                             variance=[(0.278 * 255) ** 2, (0.274 * 255) ** 2, (0.289 * 255) ** 2],
                             name="preprocess")(inputs)
    x = conv_bn_act(x, 16, 3, "relu", "stem", stride=2)
    taps = []
    for index, block in enumerate(spec.blocks):
        x = bottleneck(x, *block, gate=spec.se_gate, name=f"block{index}")
        if index in spec.taps:
            taps.append(x)
    for k, filters in enumerate(spec.top + (spec.width,)):
        x = conv_bn_act(x, filters, 1, spec.activation, f"top{k}")
    for level, tap in zip(("s16", "s8", "s4"), reversed(taps)):
        lateral = conv_bn_act(tap, spec.width, 1, spec.activation, f"lateral_{level}")
        x = layers.Add(name=f"merge_{level}")([upsample(x, spec, f"up_{level}"), lateral])
    x = detect_module(x, spec)
    prior = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
    outputs = {"heatmap": layers.Activation("sigmoid", dtype="float32", name="heatmap_sigmoid")(
                   head(x, 1, spec, "heatmap", prior)),
               "box": layers.Activation("exponential", dtype="float32", name="box_exp")(head(x, 4, spec, "box")),
               "landmarks": layers.Activation("linear", dtype="float32", name="landmarks_linear")(
                   head(x, 10, spec, "landmarks"))}
    return named_model(inputs, outputs, layout)


def build_dbface_small(layout: str = "dbface_small", input_size: int | None = None) -> keras.Model:
    return build_dbface(layout, input_size)


register(ModelSpec("dbface", build_dbface, codec="centernet", config="dbface.yaml", task="detection"))
register(ModelSpec("dbface_small", build_dbface_small, codec="centernet", config="dbface_small.yaml",
                   task="detection"))


def build_dbface_nano(layout: str = "dbface_nano", input_size: int | None = None) -> keras.Model:
    return build_dbface(layout, input_size)


register(ModelSpec("dbface_nano", build_dbface_nano, codec="centernet", config="dbface_nano.yaml", task="detection"))
