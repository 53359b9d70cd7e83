"""Freeze a trained landmark run: serving model, SavedModel, TFLite (float32, float16, int8) and a parity report.

The serving graph takes a uint8 RGB face crop batch (N, S, S, 3) and returns "landmarks" (N, K, 2) in pixel
coordinates of that crop (continuous convention): preprocessing and the codec's decoding are inside the graph,
and training-only outputs (PFLD's pose) are gone.
"""
from __future__ import annotations

import os
import re

import keras
import numpy as np
import tensorflow as tf

from facekit.files import write_json


class ParityError(RuntimeError):
    """An exported artifact does not reproduce the Keras model within its bar."""


def rebuild_float32(run_dir: str):
    """The run's network rebuilt from its config in float32, with the best weights; plus (codec, config, spec)."""
    from facekit.registry import get_spec
    from facekit.training import BEST_MODEL, load_run_files

    codec, config = load_run_files(run_dir)
    spec = get_spec(config["model"])
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        if spec.codec == "centernet":
            network = spec.build(**config["model_args"])
        else:
            network = spec.build(codec.num_points, **codec.build_args, **config["model_args"])
    finally:
        keras.config.set_dtype_policy(policy)
    network.load_weights(os.path.join(run_dir, BEST_MODEL))
    return network, codec, config, spec


def convert_tflite(saved_model_dir: str, mode: str, representative_images: np.ndarray | None = None,
                   float_tensors: tuple[str, ...] = ()) -> bytes:
    """SavedModel -> TFLite flatbuffer. mode: "fp32", "fp16" or "int8" (full-integer, uint8 input).

    Builtin ops only, so an op without a TFLite kernel fails here and not on a phone. int8 with float_tensors
    (name substrings) keeps the ops that write those tensors in float32 (TFLite's selective quantization):
    a head whose calibrated range is far wider than the values that matter, and what decodes it."""
    model = _convert(saved_model_dir, mode, _converter(saved_model_dir, mode, representative_images).convert)
    if mode == "int8" and float_tensors:
        from ai_edge_litert.interpreter import Interpreter

        names = [t["name"] for t in Interpreter(model_content=model).get_tensor_details()
                 if any(part in t["name"] for part in float_tensors)]
        if not names:
            raise ValueError(f"{saved_model_dir}: no tensor named like {list(float_tensors)} to keep in float")
        converter = _converter(saved_model_dir, mode, representative_images)
        model = _convert(saved_model_dir, mode, lambda: tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names),
        ).get_nondebug_quantized_model())
    return model


def _convert(saved_model_dir: str, mode: str, convert) -> bytes:
    try:
        return convert()
    except Exception as error:  # ConverterError's message is pages of MLIR; name the ops instead
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither", str(error)))) or [str(error).splitlines()[0]]
        raise ValueError(f"{saved_model_dir}: no TFLite builtin op for {', '.join(ops)} ({mode}); replace it in "
                         "the model or its decode") from None


def _converter(saved_model_dir: str, mode: str, representative_images: np.ndarray | None):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if representative_images is None or not len(representative_images):
            raise ValueError("int8 conversion needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for image in representative_images:
                yield [image[None].astype(np.uint8)]
        converter.representative_dataset = representative
        # int8 kernels first; an op without one stays builtin float
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.uint8
    elif mode != "fp32":
        raise ValueError(f"unknown TFLite mode {mode!r}; choose fp32, fp16 or int8")
    return converter


def write_atomic(path: str, payload: bytes) -> None:
    """Write a file under a temporary name and rename it, so an interrupted export leaves no half file."""
    with open(path + ".tmp", "wb") as f:
        f.write(payload)
    os.replace(path + ".tmp", path)


def finish_report(out_dir: str, report: dict, failures: list[str]) -> dict:
    """Write out_dir/report.json with parity_ok; raise ParityError (after writing) when a bar was missed."""
    report["parity_ok"] = not failures
    write_json(os.path.join(out_dir, "report.json"), report)
    if failures:
        raise ParityError("; ".join(failures))
    return report


def artifact_bytes(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)

