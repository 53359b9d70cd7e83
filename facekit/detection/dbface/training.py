"""Training engine for single-shot detectors (DBFace), behind training/train.py.

Same run folder as landmark runs: config.yaml, codec.json, best.keras (+ best.json, chosen by validation AP),
metrics.json, log.csv, augmented_batch.jpg, tensorboard/, backup/ (rerunning resumes). Validation letterboxes each
validation photo to train.val_size, decodes the top peaks, keeps scores >= train.val_score, runs greedy NMS and
scores AP@0.5 with the WIDER protocol (facekit.detection.evaluation).
"""
from __future__ import annotations

import os

import cv2
import keras
import numpy as np
import tensorflow as tf

from facekit import losses
from facekit.codecs import make_codec
from facekit.config import Config
from facekit.detection import data
from facekit.detection.evaluation import average_precision
from facekit.draw import draw_detections, tile
from facekit.files import read_json, write_json
from facekit.infer.detector import NMS_THRESHOLD, letterbox, postprocess
from facekit.registry import ModelSpec
from facekit.training import (
    BEST_MODEL,
    NetworkTrainer,
    finished_metrics,
    fit_run,
    learning_rate,
    make_optimizer,
    prepare_run,
    start_from_weights,
)

LOSS_PARTS = ("focal", "giou", "wing")


class DetectorTrainer(NetworkTrainer):
    """A detector under DBFace's loss; logs its parts next to the total."""

    part_names = LOSS_PARTS

    def __init__(self, network, codec, loss_config, **kwargs):
        super().__init__(network, **kwargs)
        self.codec, self.loss_config = codec, loss_config

    def objective(self, y_pred, y):
        parts = losses.detection_loss(self.loss_config, self.codec, y_pred, y)
        return parts["total"], parts


def peaks_function(network, codec, top_k: int | None = None):
    """A compiled uint8 canvases (N, S, S, 3) -> decoded top-K peaks function (dict of NumPy arrays)."""
    @tf.function(reduce_retracing=True)
    def run(batch):
        return codec.decode(network(tf.cast(batch, tf.float32), training=False), top_k)
    return lambda batch: {key: value.numpy() for key, value in run(batch).items()}


def detect_scenes(peaks, scenes: list[dict], size: int, score_threshold: float,
                  nms_threshold: float | None = NMS_THRESHOLD, batch_size: int = 4) -> list:
    """Detections for each scene's image (RGB uint8), letterboxed to size x size."""
    results = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start:start + batch_size]
        boxed = [letterbox(scene["image"], size) for scene in chunk]
        out = peaks(np.stack([canvas for canvas, _ in boxed]))
        for k, (scene, (_, scale)) in enumerate(zip(chunk, boxed)):
            results.append(postprocess(out["scores"][k], out["boxes_xyxy"][k], out["landmarks_px"][k], scale,
                                       scene["image"].shape[:2], score_threshold, nms_threshold))
    return results


def scenes_ap(detections: list, scenes: list[dict]) -> float:
    return average_precision([(d.boxes_xyxy, d.scores) for d in detections], [s["boxes_xyxy"] for s in scenes],
                             [s["invalid"] for s in scenes])


LETTERBOXES = (160, 192, 224, 256, 320, 416, 512, 640)  # the letterbox sides a finished run is validated at


def letterbox_aps(peaks, scenes: list[dict], score_threshold: float) -> dict[str, float]:
    """Validation AP of a detector at each side in LETTERBOXES: {"320": 0.81, ...}."""
    return {str(size): scenes_ap(detect_scenes(peaks, scenes, size, score_threshold), scenes) for size in LETTERBOXES}


def pick_letterbox(aps: dict[str, float], tolerance: float = 0.005) -> int:
    """The smallest letterbox side whose validation AP is within `tolerance` of the best: the export's default
    input size (a larger canvas costs time, and past the training face sizes it fragments close-up faces)."""
    best = max(aps.values())
    return min(int(size) for size, ap in aps.items() if ap >= best - tolerance)


class ValidationAP(keras.callbacks.Callback):
    """Adds val_ap (AP@0.5 on the validation photos) to the epoch logs; saves run/best.keras when it improves."""

    def __init__(self, network, codec, scenes: list[dict], size: int, score_threshold: float, run_dir: str):
        super().__init__()
        self.network, self.scenes, self.size, self.score, self.run_dir = network, scenes, size, score_threshold, run_dir
        self.peaks = peaks_function(network, codec)
        best_path = os.path.join(run_dir, "best.json")
        self.best = read_json(best_path)["val_ap"] if os.path.exists(best_path) else -1.0

    def on_epoch_end(self, epoch, logs=None):
        ap = scenes_ap(detect_scenes(self.peaks, self.scenes, self.size, self.score), self.scenes)
        logs["val_ap"] = ap
        if ap > self.best:
            self.best = ap
            self.network.save(os.path.join(self.run_dir, BEST_MODEL))
            write_json(os.path.join(self.run_dir, "best.json"), {"val_ap": ap, "epoch": epoch + 1})


def save_augmented_preview(record_dirs, config: Config, path: str, count: int = 16) -> None:
    """The first augmented training canvases with their boxes and points, to check the pipeline by eye."""
    scenes = data.augmented_scenes(record_dirs, config.data.image_size, config.data, config.augment, config.train.seed)
    tiles = []
    for scene in scenes.take(count).as_numpy_iterator():
        boxes = scene["boxes_xyxy"]
        real = boxes[:, 2] > boxes[:, 0]
        tiles.append(draw_detections(cv2.cvtColor(np.uint8(scene["image"]), cv2.COLOR_RGB2BGR), boxes[real],
                                     scene["landmarks_px"][real]))
    cv2.imwrite(path, tile(tiles, columns=4))


def train_detector(spec: ModelSpec, config: Config, train_dirs: list[str], val_dirs: list[str], run_dir: str) -> dict:
    """Fit a detector; returns metrics.json's content (best val AP and epoch, epochs run, seconds)."""
    keras.utils.set_random_seed(config.train.seed)
    codec = prepare_run(config, run_dir)
    finished = finished_metrics(run_dir)
    if finished is not None:
        return finished
    if codec is None:
        codec = make_codec(spec.codec, 5, None, **config.codec_args)
        write_json(os.path.join(run_dir, "codec.json"), codec.to_dict())
    network = spec.build(**config.model_args)
    start_from_weights(network, config.train.init_weights)
    size = config.data.image_size
    stride = size // int(network(tf.zeros((1, size, size, 3)))["heatmap"].shape[1])
    if stride != codec.stride:
        raise ValueError(f"{spec.name} outputs at stride {stride} but codec_args.stride is {codec.stride}")
    steps = config.train.steps_per_epoch or max(1, data.count_images(train_dirs) // config.data.batch_size)
    train_ds = data.training_dataset(train_dirs, codec, config.data, config.augment, config.train.seed)
    scenes = data.evaluation_scenes(val_dirs)
    save_augmented_preview(train_dirs, config, os.path.join(run_dir, "augmented_batch.jpg"))

    trainer = DetectorTrainer(network, codec, config.loss)
    trainer(tf.zeros((1, size, size, 3)))  # BackupAndRestore needs a built model
    trainer.compile(optimizer=make_optimizer(config.optimizer,
                                             learning_rate(config.schedule, steps * config.train.epochs)))
    validation = ValidationAP(network, codec, scenes, config.train.val_size, config.train.val_score, run_dir)
    fitted = fit_run(trainer, train_ds, config, steps, validation, run_dir)
    best = read_json(os.path.join(run_dir, "best.json"))
    network.load_weights(os.path.join(run_dir, BEST_MODEL))
    letterbox_ap = letterbox_aps(validation.peaks, scenes, config.train.val_score)  # the best weights, loaded
    metrics = {"model": spec.name, "best_val_ap": best["val_ap"], "best_epoch": best["epoch"], **fitted,
               "letterbox": pick_letterbox(letterbox_ap), "letterbox_ap": letterbox_ap,
               "train_images": data.count_images(train_dirs), "val_images": len(scenes), "train_dirs": train_dirs,
               "val_dirs": val_dirs, "image_size": size}
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    return metrics
