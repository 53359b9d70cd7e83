"""Freeze a trained landmark run: serving model, SavedModel, TFLite (float32, float16, int8) and a parity report.

The serving graph takes a uint8 RGB face crop batch (N, S, S, 3) and returns "landmarks" (N, K, 2) in pixel
coordinates of that crop (continuous convention): preprocessing and the codec's decoding are inside the graph,
and training-only outputs (PFLD's pose) are gone.
"""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from facekit.alignment import data
from facekit.alignment.metrics import nme_per_sample
from facekit.export import artifact_bytes, convert_tflite, finish_report, rebuild_float32, write_atomic
from facekit.files import read_json, write_json
from facekit.records import schema
from facekit.records.manifest import jaw_convention

FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8")


# parity bars: float32 max |diff| as a fraction of the crop side; float16 / int8 NME drift in NME units
FP32_MAX_DIFF = 1e-4


FP16_NME_DRIFT = 0.0005


INT8_NME_DRIFT = 0.005


class DecodeToPixels(keras.layers.Layer):
    """Codec decode (TF ops) followed by scaling crop-normalised points to crop pixels."""

    def __init__(self, codec, size: int, **kwargs):
        super().__init__(**kwargs)
        self.codec, self.size = codec, size

    def call(self, outputs):
        return self.codec.decode(outputs) * float(self.size)


def serving_model(network, codec, training_only_outputs=()) -> keras.Model:
    """uint8 (N, S, S, 3) RGB -> {"landmarks": (N, K, 2) crop pixels}; float32 whatever the training precision."""
    size = network.input_shape[1]
    images = keras.Input((size, size, 3), dtype="uint8", name="image")
    outputs = network(keras.layers.Lambda(lambda x: tf.cast(x, tf.float32), name="to_float")(images))
    kept = {k: v for k, v in outputs.items() if k not in training_only_outputs}
    landmarks = DecodeToPixels(codec, size, name="landmarks")(kept)
    return keras.Model(images, {"landmarks": landmarks}, name=f"{network.name}_serving")


def run_saved_model(path: str, images: np.ndarray) -> np.ndarray:
    loaded = tf.saved_model.load(path)
    return loaded.serve(tf.constant(images, tf.uint8))["landmarks"].numpy()


def export_run(run_dir: str, out_dir: str, formats=FORMATS, val_dirs: list[str] | None = None,
               train_dirs: list[str] | None = None, parity_count: int = 64, representative_count: int = 200) -> dict:
    """Export a run's best model; returns (and writes out_dir/report.json) sizes, parity and NME per artifact.

    val_dirs/train_dirs default to those recorded in the run (metrics.json). Raises ParityError after writing
    the report when an artifact misses its bar."""
    from facekit.infer.runtime import run_tflite

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    network, codec, config, spec = rebuild_float32(run_dir)
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    val_dirs = val_dirs or metrics["val_dirs"]
    train_dirs = train_dirs or metrics["train_dirs"]
    model = serving_model(network, codec, spec.training_only_outputs)
    size = model.input_shape[1]
    scheme = data.record_scheme(val_dirs)
    val = data.evaluation_arrays(val_dirs, size, parity_count)
    images, truth_px = val["image"], val["points_norm"] * size
    reference = model.predict_on_batch(images)["landmarks"]
    os.makedirs(out_dir, exist_ok=True)

    def entry(path, predicted):
        diff = float(np.abs(predicted - reference).max())
        return {"path": os.path.relpath(path, out_dir), "bytes": artifact_bytes(path), "max_abs_diff_px": diff,
                "nme": float(nme_per_sample(predicted, truth_px, scheme, config["train"]["normalize"]).mean())}

    report = {"run": run_dir, "model": spec.name, "input_size": size, "num_points": scheme.num_points,
              "parity_images": len(images), "keras": {"nme": float(nme_per_sample(
                  reference, truth_px, scheme, config["train"]["normalize"]).mean())}, "artifacts": {}}
    saved_model_dir = os.path.join(out_dir, "saved_model")
    model.export(saved_model_dir, format="tf_saved_model", verbose=False)
    if "saved_model" in formats:
        report["artifacts"]["saved_model"] = entry(saved_model_dir, run_saved_model(saved_model_dir, images))
    representative = None
    for fmt in [f for f in formats if f.startswith("tflite")]:
        mode = fmt.split("_")[1]
        if mode == "int8" and representative is None:
            representative = data.evaluation_arrays(train_dirs, size, representative_count)["image"]
        path = os.path.join(out_dir, f"{spec.name}_{mode}.tflite")
        write_atomic(path, convert_tflite(saved_model_dir, mode, representative))
        write_sidecar(path, spec.name, size, scheme.num_points, train_dirs[0])
        report["artifacts"][fmt] = entry(path, run_tflite(path, images))
    return finish_report(out_dir, report, parity_failures(report))


def parity_failures(report: dict) -> list[str]:
    keras_nme, size = report["keras"]["nme"], report["input_size"]
    failures = []
    for fmt, a in report["artifacts"].items():
        if fmt in ("saved_model", "tflite_fp32") and a["max_abs_diff_px"] > FP32_MAX_DIFF * size:
            failures.append(f"{fmt}: max |diff| {a['max_abs_diff_px']:.2e} px > {FP32_MAX_DIFF * size:.2e}")
        if fmt == "tflite_fp16" and abs(a["nme"] - keras_nme) > FP16_NME_DRIFT:
            failures.append(f"{fmt}: NME {a['nme']:.4f} vs Keras {keras_nme:.4f}")
        if fmt == "tflite_int8" and abs(a["nme"] - keras_nme) > INT8_NME_DRIFT:
            failures.append(f"{fmt}: NME {a['nme']:.4f} vs Keras {keras_nme:.4f}")
    return failures


def write_sidecar(tflite_path: str, model: str, size: int, num_points: int, train_dir: str) -> None:
    """MODEL.json beside MODEL.tflite: what the runtime needs to crop faces like the converter did."""
    manifest = schema.load_manifest(train_dir)
    sidecar = {"model": model, "input_size": size, "num_points": num_points, "scheme": manifest["scheme"],
               "margin": manifest["margin"], "jaw_convention": jaw_convention(manifest),
               "input": "uint8 RGB crop (1 or N, S, S, 3)",
               "output": "landmarks (N, K, 2) in crop pixels"}
    write_json(os.path.splitext(tflite_path)[0] + ".json", sidecar)
