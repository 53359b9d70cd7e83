"""Freeze a trained detector run: serving model with decoding inside, SavedModel, TFLite (float32, float16, int8),
parity report.

The serving graph takes one uint8 RGB square (1, S, S, 3) (the runtime letterboxes photos into it) and returns the
top-K peaks: "scores" (1, K), "boxes_xyxy" (1, K, 4) and "landmarks_px" (1, K, 5, 2) in pixels of the square. The
score threshold and NMS stay in NumPy (facekit.infer.detector), where they cost nothing and remain adjustable.
Bars: float32 boxes within 1e-3 px of Keras (the SavedModel's peaks; the float32 TFLite box head over every cell,
see dense_box_difference); float16 and int8 AP within 0.01 and 0.03 of Keras on the run's validation photos.
"""
from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from facekit.detection import data
from facekit.detection.dbface.training import detect_scenes, peaks_function, scenes_ap
from facekit.export import artifact_bytes, convert_tflite, finish_report, rebuild_float32, write_atomic
from facekit.files import read_json, write_json
from facekit.infer.detector import FaceDetector, letterbox

FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8")
FP32_MAX_BOX_DIFF = 1e-3  # pixels at the default 640 canvas; scaled with the canvas (box values, and their
# float32 rounding, grow with it: 1024 measured 1.2e-3 px on a trained run whose 640 export differs by 2.6e-4)
FP16_AP_DRIFT = 0.01
INT8_AP_DRIFT = 0.03


class DecodePeaks(keras.layers.Layer):
    def __init__(self, codec, **kwargs):
        super().__init__(**kwargs)
        self.codec = codec

    def call(self, outputs):
        return self.codec.decode(outputs)


def detector_serving_model(network, codec, size: int) -> keras.Model:
    """uint8 (1, S, S, 3) RGB -> {"scores", "boxes_xyxy", "landmarks_px"} top-K peaks, float32."""
    images = keras.Input((size, size, 3), batch_size=1, dtype="uint8", name="image")
    outputs = network(keras.layers.Lambda(lambda x: tf.cast(x, tf.float32), name="to_float")(images))
    peaks = DecodePeaks(codec, name="decode")(outputs)
    return keras.Model(images, {key: keras.layers.Identity(name=key)(value) for key, value in peaks.items()},
                       name=f"{network.name}_serving")


PARITY_PEAKS = 20  # the top peaks per validation image whose boxes are compared


def max_box_difference(reference: dict, candidate: dict, count: int = PARITY_PEAKS) -> float:
    """Largest distance (px, max over coordinates) from one of the top `count` reference peak boxes to the nearest
    of all the candidate's K peaks in the same image; peaks dicts hold boxes_xyxy (N, K, 4). Boxes are matched by
    position, not rank: near-equal scores may come out of top-K in another order."""
    ref, cand = reference["boxes_xyxy"][:, :count], candidate["boxes_xyxy"]
    diff = np.abs(ref[:, :, None] - cand[:, None]).max(axis=3)  # (N, count, count)
    return float(diff.min(axis=2).max())


def dense_box_difference(network, codec, saved_model_dir: str, canvases: np.ndarray) -> float:
    """Largest |difference| (px) between Keras and float32 TFLite box heads (l, t, r, b x stride) over every cell
    of the canvases: the decode that follows is exact arithmetic, so this bounds the boxes' difference, and unlike
    the peaks it does not depend on which cells win a near-tie (an untrained net's heatmap is flat)."""
    from ai_edge_litert.interpreter import Interpreter

    size = canvases.shape[1]
    images = keras.Input((size, size, 3), batch_size=1, dtype="uint8", name="image")
    box = network(keras.layers.Lambda(lambda x: tf.cast(x, tf.float32))(images))["box"]
    dense = keras.Model(images, {"box": keras.layers.Rescaling(float(codec.stride), name="box")(box)})
    dense.export(saved_model_dir, format="tf_saved_model", verbose=False)
    run = Interpreter(model_content=convert_tflite(saved_model_dir, "fp32")).get_signature_runner()
    worst = 0.0
    for canvas in canvases:
        expected = dense.predict_on_batch(canvas[None])["box"]
        worst = max(worst, float(np.abs(run(image=canvas[None])["box"] - expected).max()))
    return worst


def export_detector_run(run_dir: str, out_dir: str, formats=FORMATS, val_dirs: list[str] | None = None,
                        size: int | None = None, representative_count: int = 100) -> dict:
    """Export a detector run's best model at a size x size input (default: the letterbox its validation picked,
    metrics.json's "letterbox"; runs from before that choice: the config's train.val_size); returns (and writes
    out_dir/report.json) sizes, box parity and AP per artifact. Raises ParityError after writing the report when
    an artifact misses its bar."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    network, codec, config, spec = rebuild_float32(run_dir)
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    size = size or metrics.get("letterbox") or config["train"]["val_size"]
    if size % 32:
        raise ValueError(f"export size must be a multiple of 32, got {size}")
    scenes = data.evaluation_scenes(val_dirs or metrics["val_dirs"])
    score = config["train"]["val_score"]
    model = detector_serving_model(network, codec, size)
    keras_peaks = peaks_function(network, codec)
    canvases = np.stack([letterbox(scene["image"], size)[0] for scene in scenes])
    reference = _peaks_of(keras_peaks, canvases)
    keras_ap = scenes_ap(detect_scenes(keras_peaks, scenes, size, score), scenes)
    os.makedirs(out_dir, exist_ok=True)
    report = {"run": run_dir, "model": spec.name, "input_size": size, "top_k": codec.top_k,
              "validation_images": len(scenes), "score_threshold": score, "keras": {"ap": keras_ap},
              "artifacts": {}}

    def entry(path, peaks):
        return {"path": os.path.relpath(path, out_dir), "bytes": artifact_bytes(path),
                "max_box_diff_px": max_box_difference(reference, _peaks_of(peaks, canvases)),
                "ap": scenes_ap(detect_scenes(peaks, scenes, size, score), scenes)}

    saved_model_dir = os.path.join(out_dir, "saved_model")
    model.export(saved_model_dir, format="tf_saved_model", verbose=False)
    if "saved_model" in formats:
        loaded = tf.saved_model.load(saved_model_dir)  # keep a reference: serve() needs its variables alive

        def saved_model_peaks(batch):
            return {key: value.numpy() for key, value in loaded.serve(tf.constant(batch, tf.uint8)).items()}
        report["artifacts"]["saved_model"] = entry(saved_model_dir, saved_model_peaks)
    representative = None
    for fmt in [f for f in formats if f.startswith("tflite")]:
        mode = fmt.split("_")[1]
        if mode == "int8" and representative is None:
            train_scenes = data.evaluation_scenes(metrics["train_dirs"][:2], representative_count)
            representative = np.stack([letterbox(s["image"], size)[0] for s in train_scenes])
        path = os.path.join(out_dir, f"{spec.name}_{mode}.tflite")
        write_atomic(path, convert_tflite(saved_model_dir, mode, representative, float_tensors(codec)))
        write_json(os.path.splitext(path)[0] + ".json",
                   {"model": spec.name, "task": "detection", "input_size": size, "top_k": codec.top_k,
                    "input": "uint8 RGB (1, S, S, 3), photo letterboxed at the top-left",
                    "outputs": "scores (1, K), boxes_xyxy (1, K, 4), landmarks_px (1, K, 5, 2)"})
        report["artifacts"][fmt] = entry(path, _tflite_peaks(FaceDetector(path)))
        if mode == "fp32":
            with tempfile.TemporaryDirectory() as folder:
                report["artifacts"][fmt]["max_box_head_diff_px"] = dense_box_difference(network, codec, folder,
                                                                                        canvases)
    return finish_report(out_dir, report, parity_failures(report))


def float_tensors(codec) -> tuple[str, ...]:
    """What an int8 export keeps in float32: for box-coded points, the landmark head and the decode. The head's
    cells that no face owns are never trained and answer up to +-60 box units, where a face's points lie within
    +-0.75, so int8 calibration spread its 256 levels 0.47 box units apart and the points were lost (nano at 320:
    five-point NME 0.56 in int8 against 0.24 in float32; 0.24 with these two in float, at the same AP)."""
    return ("landmarks_head", "/decode", "StatefulPartitionedCall") if codec.landmark_code == "box" else ()


def _tflite_peaks(detector: FaceDetector):
    """The .tflite model (batch 1) as a peaks function over canvas batches."""
    def peaks(batch):
        outs = [detector.peaks(canvas) for canvas in batch]
        return {key: np.stack([o[key] for o in outs]) for key in outs[0]}
    return peaks


def _peaks_of(peaks, canvases: np.ndarray) -> dict:
    outs = [peaks(canvases[i:i + 1]) for i in range(len(canvases))]
    return {key: np.concatenate([o[key] for o in outs]) for key in outs[0]}


def parity_failures(report: dict) -> list[str]:
    """saved_model: peak boxes within FP32_MAX_BOX_DIFF (same kernels as Keras); tflite_fp32: the dense box head;
    float16 and int8: AP drift."""
    keras_ap, failures = report["keras"]["ap"], []
    allowed = FP32_MAX_BOX_DIFF * max(1.0, report["input_size"] / 640)
    for fmt, a in report["artifacts"].items():
        diff = a.get("max_box_head_diff_px", a["max_box_diff_px"])
        if fmt in ("saved_model", "tflite_fp32") and diff > allowed:
            failures.append(f"{fmt}: boxes differ by up to {diff:.2e} px > {allowed:.2e}")
        for name, drift in (("tflite_fp16", FP16_AP_DRIFT), ("tflite_int8", INT8_AP_DRIFT)):
            if fmt == name and abs(a["ap"] - keras_ap) > drift:
                failures.append(f"{fmt}: AP {a['ap']:.4f} vs Keras {keras_ap:.4f} (allowed {drift})")
    return failures
