"""MTCNN on the TensorFlow side: Keras networks as cascade stages."""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from facekit.files import read_yaml, write_json
from facekit.infer.mtcnn import MTCNN


def keras_network(model: keras.Model):
    """A Keras stage network as a cascade callable: float32 batch -> dict of NumPy arrays (traced once)."""
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return lambda batch: {key: value.numpy() for key, value in forward(np.asarray(batch, np.float32)).items()}


def keras_cascade(networks: dict[str, keras.Model], **options) -> MTCNN:
    """networks {"mtcnn_pnet": ..., "mtcnn_rnet": ..., "mtcnn_onet": ...} -> MTCNN; options as MTCNN's."""
    return MTCNN(*(keras_network(networks[f"mtcnn_{stage}"]) for stage in ("pnet", "rnet", "onet")), **options)


STAGES = ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")


def export_mtcnn(networks: dict[str, keras.Model], out_dir: str, parity_inputs: int = 8, seed: int = 0) -> dict:
    """Write out_dir/{mtcnn_pnet,mtcnn_rnet,mtcnn_onet}.tflite (float32; P-Net with a resizable input) and
    report.json with each file's size and max |diff| from Keras on random inputs (P-Net at two sizes)."""
    from facekit.export import convert_tflite
    from facekit.infer.mtcnn import TFLiteNetwork

    os.makedirs(out_dir, exist_ok=True)
    rng, report = np.random.default_rng(seed), {}
    for name in STAGES:
        model = networks[name]
        saved = os.path.join(out_dir, "saved_model", name)
        model.export(saved, format="tf_saved_model", verbose=False)
        path = os.path.join(out_dir, f"{name}.tflite")
        with open(path + ".tmp", "wb") as f:
            f.write(convert_tflite(saved, "fp32"))
        os.replace(path + ".tmp", path)
        shapes = [(2, 37, 53, 3), (1, 120, 90, 3)] if name == "mtcnn_pnet" else \
            [(parity_inputs, *model.input_shape[1:])]
        runner, diff = TFLiteNetwork(path), 0.0
        for shape in shapes:
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            expected, got = keras_network(model)(x), runner(x)
            diff = max(diff, max(float(np.abs(expected[k] - got[k]).max()) for k in expected))
        report[name] = {"path": os.path.basename(path), "bytes": os.path.getsize(path), "max_abs_diff": diff}
    write_json(os.path.join(out_dir, "report.json"), report)
    return report


def load_run_networks(sources: list[str], count: int = 3) -> dict[str, keras.Model]:
    """[P_RUN, R_RUN, O_RUN] (the first `count` of them) -> each run's best weights, rebuilt with a resizable
    P-Net input (registry filled)."""
    from facekit.registry import get_spec

    if len(sources) != count:
        raise ValueError(f"expected {count} MTCNN run folder(s) ({', '.join('PRO'[:count])}), got {sources}")
    networks = {}
    for name, run_dir in zip(STAGES, sources):
        config_path = os.path.join(run_dir, "config.yaml")
        if not os.path.isfile(config_path):
            raise ValueError(f"{run_dir}: not a training run (no config.yaml)")
        config = read_yaml(config_path)
        if config["model"] != name:
            raise ValueError(f"{run_dir}: a {config['model']} run where {name} was expected (order: P, R, O)")
        args = {k: v for k, v in config.get("model_args", {}).items() if k != "input_size"}
        networks[name] = get_spec(name).build(**args)
        networks[name].load_weights(os.path.join(run_dir, "best.keras"))
    return networks

