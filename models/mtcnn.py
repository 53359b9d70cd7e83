"""MTCNN's three networks (Zhang et al. 2016) with PReLU, laid out so the weights of the `mtcnn` 1.0.0 package
load into them: P-Net (fully convolutional, 12x12 receptive field, stride 2), R-Net (24x24) and O-Net (48x48).

Inputs are RGB normalised as (pixel - 127.5) / 128, the package's (and the original Caffe model's) scaling.
Outputs: "box" (x1, y1, x2, y2 offsets as fractions of the window side), "face" (softmax over [not face, face])
and, for O-Net (optionally P-Net and R-Net), "landmarks" (x1..x5, y1..y5 as fractions of the window).
The R/O-Net Permute((2, 1, 3)) before flattening reproduces the Caffe (C, W, H) order the dense weights expect.
"""
from __future__ import annotations

import keras
from keras import layers

from facekit.registry import ModelSpec, register

# Layer names in the order of the package's `get_weights()` lists (kernel and bias per conv/dense, alpha per PReLU).
WEIGHT_ORDER = {
    "mtcnn_pnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "box", "face"),
    "mtcnn_rnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "box", "face"),
    "mtcnn_onet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5",
                   "box", "landmarks", "face"),
}
INPUT_SIZE = {"mtcnn_pnet": 12, "mtcnn_rnet": 24, "mtcnn_onet": 48}


def _conv_prelu(x, filters: int, kernel: int, index: int):
    x = layers.Conv2D(filters, kernel, padding="valid", name=f"conv{index}")(x)
    return layers.PReLU(shared_axes=[1, 2], name=f"prelu{index}")(x)


def _heads(x, dense: bool, landmarks: bool) -> dict:
    head = (lambda n, act, name: layers.Dense(n, activation=act, name=name)) if dense else \
        (lambda n, act, name: layers.Conv2D(n, 1, activation=act, name=name))
    outputs = {"box": head(4, None, "box")(x), "face": head(2, "softmax", "face")(x)}
    if landmarks:
        outputs["landmarks"] = head(10, None, "landmarks")(x)
    return outputs


def _model(inputs, outputs: dict, name: str) -> keras.Model:
    outputs = {key: layers.Identity(name=key + "_out", dtype="float32")(value) for key, value in outputs.items()}
    return keras.Model(inputs, outputs, name=name)  # float32 outputs under any dtype policy (mixed precision)


def build_pnet(input_size: int | None = None, landmarks: bool = False, **_) -> keras.Model:
    """(N, H, W, 3) normalised RGB -> box (N, h, w, 4), face (N, h, w, 2); h = ceil((H - 2) / 2) - 4.
    input_size None gives a resizable input (the cascade runs every pyramid scale through one model)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _conv_prelu(inputs, 10, 3, 1)
    x = layers.MaxPooling2D(2, 2, padding="same", name="pool1")(x)
    x = _conv_prelu(x, 16, 3, 2)
    x = _conv_prelu(x, 32, 3, 3)
    return _model(inputs, _heads(x, dense=False, landmarks=landmarks), "mtcnn_pnet")


def build_rnet(landmarks: bool = False, **_) -> keras.Model:
    """(N, 24, 24, 3) normalised RGB -> box (N, 4), face (N, 2)[, landmarks (N, 10)]."""
    inputs = keras.Input((24, 24, 3), name="image")
    x = _conv_prelu(inputs, 28, 3, 1)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _conv_prelu(x, 48, 3, 2)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _conv_prelu(x, 64, 2, 3)
    x = layers.Flatten(name="flatten")(layers.Permute((2, 1, 3), name="permute")(x))
    x = layers.PReLU(name="prelu4")(layers.Dense(128, name="fc4")(x))
    return _model(inputs, _heads(x, dense=True, landmarks=landmarks), "mtcnn_rnet")


def build_onet(landmarks: bool = True, **_) -> keras.Model:
    """(N, 48, 48, 3) normalised RGB -> box (N, 4), face (N, 2), landmarks (N, 10)."""
    inputs = keras.Input((48, 48, 3), name="image")
    x = _conv_prelu(inputs, 32, 3, 1)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _conv_prelu(x, 64, 3, 2)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _conv_prelu(x, 64, 3, 3)
    x = layers.MaxPooling2D(2, 2, padding="same", name="pool3")(x)
    x = _conv_prelu(x, 128, 2, 4)
    x = layers.Flatten(name="flatten")(layers.Permute((2, 1, 3), name="permute")(x))
    x = layers.PReLU(name="prelu5")(layers.Dense(256, name="fc5")(x))
    return _model(inputs, _heads(x, dense=True, landmarks=landmarks), "mtcnn_onet")


BUILDERS = {"mtcnn_pnet": build_pnet, "mtcnn_rnet": build_rnet, "mtcnn_onet": build_onet}


def set_package_weights(model: keras.Model, weights: list) -> None:
    """Load a `get_weights()` list of the `mtcnn` package's net into our model of the same stage, by layer name."""
    order = WEIGHT_ORDER[model.name]
    expected = sum(len(model.get_layer(name).weights) for name in order)
    if len(weights) != expected:
        raise ValueError(f"{model.name}: the weight list has {len(weights)} arrays, expected {expected}")
    position = 0
    for name in order:
        layer = model.get_layer(name)
        count = len(layer.weights)
        layer.set_weights(weights[position:position + count])
        position += count


def package_weights(name: str) -> list:
    """The `get_weights()` list shipped in the `mtcnn` 1.0.0 package (a development dependency) for one stage."""
    import importlib.util
    import os

    found = importlib.util.find_spec("mtcnn")
    if found is None or not found.submodule_search_locations:
        raise ValueError("importing MTCNN weights needs the `mtcnn` package: pip install mtcnn==1.0.0 lz4 joblib")
    path = os.path.join(found.submodule_search_locations[0], "assets", "weights", name.split("_")[1] + ".lz4")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such weight file in the installed `mtcnn` package")
    import joblib

    return joblib.load(path)


def imported_networks() -> dict[str, keras.Model]:
    """P-Net (resizable input), R-Net and O-Net with the `mtcnn` package's weights: {stage name: model}."""
    networks = {}
    for name, builder in BUILDERS.items():
        networks[name] = builder()
        set_package_weights(networks[name], package_weights(name))
    return networks


for _name, _builder in BUILDERS.items():
    register(ModelSpec(_name, _builder, codec="mtcnn", config=f"{_name}.yaml", task="detection"))
