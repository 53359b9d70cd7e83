"""The landmark trainer behind training/train.py: one fit for every registered landmark model (facekit.training
runs it), its validation callback (NME, best checkpoint) and the setup the throughput benchmark shares.

A run directory holds config.yaml (resolved), codec.json, best.keras (+ best.json), metrics.json, log.csv,
augmented_batch.jpg (what the model sees), tensorboard/ and backup/ (BackupAndRestore state, so an interrupted
run resumes where it stopped).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from facekit import losses
from facekit.alignment import data
from facekit.alignment.metrics import nme_per_sample
from facekit.codecs import make_codec
from facekit.config import Config
from facekit.draw import draw_points, tile
from facekit.files import read_json, write_json
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


class LandmarkTrainer(NetworkTrainer):
    """A landmark network under the configured loss (facekit.losses.landmark_loss)."""

    def __init__(self, network, codec, loss_config, **kwargs):
        super().__init__(network, **kwargs)
        self.codec, self.loss_config = codec, loss_config

    def objective(self, y_pred, y):
        return losses.landmark_loss(self.loss_config, self.codec, y_pred, y), {}


def points_function(network, codec):
    """A compiled images (N, S, S, 3) -> points_norm (N, K, 2) function: network then codec decode."""
    @tf.function(reduce_retracing=True)
    def run(batch):
        return codec.decode(network(tf.cast(batch, tf.float32), training=False))
    return run


def predict_points(network, codec, images: np.ndarray, batch_size: int = 64, function=None) -> np.ndarray:
    """images (N, S, S, 3) uint8 -> points_norm (N, K, 2), decoded by the codec."""
    run = function or points_function(network, codec)
    return np.concatenate([run(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)])


def start_from_mean_shape(network, codec, points_norm: np.ndarray, kernel_scale: float = 0.01) -> None:
    """Regression models start by predicting the training mean shape: "fc" bias = mean shape, kernel shrunk.

    With Glorot init the head's output noise is ~0.5 of the crop side, so early training first has to undo it
    and the loss explodes; starting at the mean shape (17.7% NME on HELEN) converges in far fewer epochs."""
    if codec.kind == "regression":
        fc = network.get_layer("fc")
        fc.kernel.assign(fc.kernel * kernel_scale)
        fc.bias.assign(points_norm.mean(axis=0).reshape(-1))


class ValidationNME(keras.callbacks.Callback):
    """Adds val_nme to the epoch logs and saves the network whenever it improves (run/best.keras)."""

    def __init__(self, network, codec, scheme, val: dict, normalize: str, run_dir: str):
        super().__init__()
        self.network, self.codec, self.scheme, self.val = network, codec, scheme, val
        self.normalize, self.run_dir = normalize, run_dir
        self.predict = points_function(network, codec)
        best_path = os.path.join(run_dir, "best.json")
        self.best = read_json(best_path)["val_nme"] if os.path.exists(best_path) else np.inf

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_points(self.network, self.codec, self.val["image"], function=self.predict)
        nme = float(nme_per_sample(predicted, self.val["points_norm"], self.scheme, self.normalize).mean())
        logs["val_nme"] = nme
        if nme < self.best:
            self.best = nme
            self.network.save(os.path.join(self.run_dir, BEST_MODEL))
            write_json(os.path.join(self.run_dir, "best.json"), {"val_nme": nme, "epoch": epoch + 1})


def pfld_targets(annotations: dict, cap: float):
    """PFLD's extra targets: the (augmented) pose and the class-balance weight from the training set."""
    table = tf.constant(losses.balance_table(annotations["attributes"], annotations["pose_rad"], cap))

    def extra(sample):
        return {"pose": sample["pose_rad"],
                "balance": losses.balance_weight(sample["attributes"], sample["pose_rad_source"], table)}
    return extra


def save_augmented_preview(record_dirs, input_size, config: Config, path: str, count: int = 16) -> None:
    """A picture of the first augmented training samples with their points, to check the pipeline by eye."""
    samples = data.augmented_crops(record_dirs, input_size, config.data, config.augment, config.train.seed)
    tiles = [draw_points(cv2.cvtColor(np.uint8(s["image"]), cv2.COLOR_RGB2BGR), s["points_norm"] * input_size,
                         (0, 0, 255)) for s in samples.take(count).as_numpy_iterator()]
    cv2.imwrite(path, tile(tiles))


@dataclass
class TrainingSetup:
    """What train() fits: the compiled trainer, its network and codec, and the infinite training batches."""

    trainer: keras.Model
    network: keras.Model
    codec: object
    train_ds: object  # tf.data.Dataset of (images (B, S, S, 3) float32, targets)
    input_size: int
    steps: int  # steps per epoch: train.steps_per_epoch, else one pass over the training records


def training_setup(spec: ModelSpec, config: Config, train_dirs: list[str], codec=None) -> TrainingSetup:
    """Codec (made from the training points unless given), network started from the mean shape, tf.data
    pipeline and compiled trainer: train() and benchmarks/train_throughput.py share it."""
    scheme = data.record_scheme(train_dirs)
    annotations = data.read_annotations(train_dirs)
    if codec is None:
        codec = make_codec(spec.codec, scheme.num_points, annotations["points_norm"], **config.codec_args)
    network = spec.build(scheme.num_points, **codec.build_args, **config.model_args)
    input_size = network.input_shape[1]
    start_from_mean_shape(network, codec, annotations["points_norm"])
    start_from_weights(network, config.train.init_weights)
    if "score" in network.output and network.output["score"].shape[1] != codec.grid:
        raise ValueError(f"codec grid {codec.grid} does not match the model's {network.output['score'].shape[1]}x"
                         f"{network.output['score'].shape[1]} output at input {input_size}; set codec_args.grid")
    steps = config.train.steps_per_epoch or max(1, data.count_records(train_dirs) // config.data.batch_size)
    extra = pfld_targets(annotations, config.loss.balance_cap) if config.loss.name == "pfld" else None
    train_ds = data.training_dataset(train_dirs, input_size, codec, config.data, config.augment,
                                     config.train.seed, extra)
    trainer = LandmarkTrainer(network, codec, config.loss)
    trainer(tf.zeros((1, input_size, input_size, 3)))  # BackupAndRestore needs a built model
    trainer.compile(optimizer=make_optimizer(config.optimizer,
                                             learning_rate(config.schedule, steps * config.train.epochs)))
    return TrainingSetup(trainer, network, codec, train_ds, input_size, steps)


def train(spec: ModelSpec, config: Config, train_dirs: list[str], val_dirs: list[str], run_dir: str) -> dict:
    """Fit the model; returns metrics.json's content (best val NME and epoch, epochs run, seconds)."""
    keras.utils.set_random_seed(config.train.seed)
    scheme = data.record_scheme(train_dirs + val_dirs)
    codec = prepare_run(config, run_dir)
    finished = finished_metrics(run_dir)
    if finished is not None:
        return finished
    setup = training_setup(spec, config, train_dirs, codec)
    if codec is None:
        write_json(os.path.join(run_dir, "codec.json"), setup.codec.to_dict())
    network, codec, input_size, steps = setup.network, setup.codec, setup.input_size, setup.steps
    val = data.evaluation_arrays(val_dirs, input_size)
    save_augmented_preview(train_dirs, input_size, config, os.path.join(run_dir, "augmented_batch.jpg"))
    validation = ValidationNME(network, codec, scheme, val, config.train.normalize, run_dir)
    fitted = fit_run(setup.trainer, setup.train_ds, config, steps, validation, run_dir)
    best = read_json(os.path.join(run_dir, "best.json"))
    metrics = {"model": spec.name, "best_val_nme": best["val_nme"], "best_epoch": best["epoch"], **fitted,
               "train_records": data.count_records(train_dirs), "val_records": len(val["image"]),
               "train_dirs": train_dirs, "val_dirs": val_dirs, "input_size": input_size,
               "normalize": config.train.normalize}
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    return metrics
