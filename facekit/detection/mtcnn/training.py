"""Training engine for the MTCNN stages (P-Net, R-Net, O-Net), behind training/train.py.

Data: sample folders from `python -m tfrecords_tools.mtcnn_samples`. Every training batch mixes the kinds
3:1:1:2 (negative:positive:part:landmark; kinds a folder lacks are left out of the mix), with colour jitter;
mirroring happened when the samples were cut. Loss: facekit.detection.mtcnn.loss.mtcnn_loss with the stage's
weights (OHEM on the face loss, keeping the hardest 70%). Same run folder as the other models: config.yaml,
best.keras (+ best.json, chosen by validation loss), metrics.json, log.csv, augmented_batch.jpg, tensorboard/,
backup/ (rerunning resumes).
"""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from facekit.config import AugmentConfig, Config
from facekit.detection.mtcnn.loss import LOSS_WEIGHTS, mtcnn_loss
from facekit.detection.mtcnn.samples import KIND_NAMES, MIX, STAGE_SIZES, write_sample_preview
from facekit.files import read_json, write_json
from facekit.records import schema
from facekit.records.schema import SampleKind
from facekit.records.verify import naming_damaged_shards
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

AUTOTUNE = tf.data.AUTOTUNE
LOSS_PARTS = ("face", "box", "landmarks")


def sample_manifest(record_dir: str, stage: str) -> dict:
    """The manifest of an MTCNN sample folder, checked to hold windows of this stage's size."""
    manifest = schema.load_manifest(record_dir, task="mtcnn_samples")
    if manifest["stage"] != stage:
        raise ValueError(f"{record_dir} holds {manifest['stage']} samples ({manifest['image_size']} px); this "
                         f"model trains on {stage} samples (--stage {stage})")
    return manifest


def kind_counts(record_dirs: list[str], stage: str) -> dict[str, int]:
    totals = dict.fromkeys(KIND_NAMES, 0)
    for record_dir in record_dirs:
        for name, count in sample_manifest(record_dir, stage)["num_by_kind"].items():
            totals[name] += count
    return totals


def _parsed(files: list[str], size: int, deterministic: bool = True):
    ds = tf.data.TFRecordDataset(files).batch(512)
    ds = ds.map(lambda s: schema.parse_mtcnn_samples(s, size), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    return ds.unbatch().map(lambda x: {k: x[k] for k in ("image", "kind", "box", "landmarks")})


def mixed_samples(record_dirs: list[str], stage: str, shuffle_buffer: int, seed: int, cache: bool = True):
    """Infinite samples, each kind from its own shuffled, repeated stream, drawn 3:1:1:2. With cache, each
    stream keeps its parsed windows in memory after the first pass (the records are read once, not every epoch)."""
    files = [f for d in record_dirs for f in schema.record_files(d)]
    counts, size = kind_counts(record_dirs, stage), STAGE_SIZES[stage]
    present = [kind for kind in SampleKind if counts[KIND_NAMES[kind]] > 0]
    if SampleKind.NEGATIVE not in present or SampleKind.POSITIVE not in present:
        raise ValueError(f"{record_dirs}: the face loss needs negative and positive samples, found {counts}")
    streams = []
    for kind in present:
        buffer = max(1, min(shuffle_buffer, counts[KIND_NAMES[kind]]))
        keep = lambda x, k=int(kind): x["kind"] == k  # noqa: E731
        if cache:
            stream = _parsed(files, size).filter(keep).cache().shuffle(buffer, seed=seed + kind).repeat()
        else:
            names = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed + kind).repeat()
            stream = names.interleave(lambda f: _parsed([f], size), cycle_length=min(4, len(files)),
                                      num_parallel_calls=AUTOTUNE, deterministic=True)
            stream = stream.filter(keep).shuffle(buffer, seed=seed + kind)
        streams.append(stream)
    weights = np.array([MIX[KIND_NAMES[kind]] for kind in present], np.float64)
    return tf.data.Dataset.sample_from_datasets(streams, list(weights / weights.sum()), seed=seed)


def jitter_colours(images, seed, config: AugmentConfig):
    """uint8 windows (B, S, S, 3) -> float32 0..255 with random brightness, contrast, saturation and grey."""
    images = tf.cast(images, tf.float32)
    if not config.color_jitter:
        return images
    count = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    uniform = lambda s, lo, hi: tf.random.stateless_uniform([count, 1, 1, 1], s, lo, hi)  # noqa: E731
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = grey + (images - grey) * uniform(seeds[0], 0.6, 1.4)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = mean + (images - mean) * uniform(seeds[1], 0.7, 1.3) + uniform(seeds[2], -32.0, 32.0)
    to_grey = uniform(seeds[3], 0.0, 1.0) < config.grey
    images = tf.where(to_grey, tf.reduce_mean(images, axis=-1, keepdims=True) + 0 * images, images)
    return tf.clip_by_value(images, 0.0, 255.0)


def normalize(images):
    """0..255 -> (pixel - 127.5) / 128, the networks' input scaling (facekit.infer.mtcnn.normalize)."""
    return (tf.cast(images, tf.float32) - 127.5) / 128.0


def training_dataset(record_dirs: list[str], stage: str, config: Config):
    """Batches (normalised windows (B, S, S, 3), {"kind", "box", "landmarks"}), mixed 3:1:1:2 and jittered."""
    seed = config.train.seed
    ds = mixed_samples(record_dirs, stage, config.data.shuffle_buffer, seed, config.data.cache)
    ds = ds.batch(config.data.batch_size, drop_remainder=True).enumerate()

    def augment(step, batch):
        images = jitter_colours(batch["image"], tf.stack([tf.cast(step, tf.int32), seed]), config.augment)
        return normalize(images), {k: batch[k] for k in ("kind", "box", "landmarks")}
    return ds.map(augment, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def validation_samples(record_dirs: list[str], stage: str) -> dict:
    """Every validation sample as NumPy arrays: image (N, S, S, 3) uint8, kind (N,), box (N, 4), landmarks
    (N, 10)."""
    for d in record_dirs:
        sample_manifest(d, stage)
    files = [f for d in record_dirs for f in schema.record_files(d)]
    with naming_damaged_shards(record_dirs):
        batches = list(_parsed(files, STAGE_SIZES[stage]).batch(4096).as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def validation_metrics(outputs: dict, samples: dict, weights) -> dict:
    """Per-kind validation figures: face accuracy on negatives and positives (score 0.5), mean absolute box
    offset error on positives and parts, mean absolute landmark error (fractions of the window) on landmark
    samples, and the loss with every sample kept (no OHEM)."""
    kind = samples["kind"]
    face = outputs["face"].reshape(len(kind), 2)[:, 1]
    box = outputs["box"].reshape(len(kind), 4)
    out, loss = {}, 0.0
    used = (kind == SampleKind.NEGATIVE) | (kind == SampleKind.POSITIVE)
    if used.any():
        is_face = kind[used] == SampleKind.POSITIVE
        out["val_face_accuracy"] = float(np.mean((face[used] > 0.5) == is_face))
        probability = np.where(is_face, face[used], 1 - face[used])
        loss += weights[0] * float(np.mean(-np.log(np.clip(probability, 1e-10, 1.0))))
    for k, name in ((SampleKind.NEGATIVE, "negative"), (SampleKind.POSITIVE, "positive")):
        if (kind == k).any():
            out[f"val_{name}_accuracy"] = float(np.mean((face[kind == k] > 0.5) == (k == SampleKind.POSITIVE)))
    boxed = (kind == SampleKind.POSITIVE) | (kind == SampleKind.PART)
    for k, name in ((SampleKind.POSITIVE, "positive"), (SampleKind.PART, "part")):
        if (kind == k).any():
            out[f"val_box_error_{name}"] = float(np.abs(box[kind == k] - samples["box"][kind == k]).mean())
    if boxed.any():
        loss += weights[1] * float(np.mean(np.sum((box[boxed] - samples["box"][boxed]) ** 2, axis=1)))
    marked = kind == SampleKind.LANDMARK
    if marked.any() and "landmarks" in outputs:
        marks = outputs["landmarks"].reshape(len(kind), 10)[marked]
        out["val_landmark_error"] = float(np.abs(marks - samples["landmarks"][marked]).mean())
        loss += weights[2] * float(np.mean(np.sum((marks - samples["landmarks"][marked]) ** 2, axis=1)))
    out["val_loss"] = loss
    return out


class StageTrainer(NetworkTrainer):
    """A stage network under the MTCNN loss; logs its parts next to the total."""

    part_names = LOSS_PARTS

    def __init__(self, network, weights, keep: float = 0.7, **kwargs):
        super().__init__(network, **kwargs)
        self.loss_weights, self.keep = weights, keep

    def objective(self, y_pred, y):
        return mtcnn_loss(y_pred, y["kind"], y["box"], y["landmarks"], self.loss_weights, self.keep)


class StageValidation(keras.callbacks.Callback):
    """Adds the validation figures to the epoch logs; saves run/best.keras when val_loss improves."""

    def __init__(self, network, samples: dict, weights, run_dir: str):
        super().__init__()
        self.network, self.samples, self.weights, self.run_dir = network, samples, weights, run_dir
        spec = tf.TensorSpec([None, *samples["image"].shape[1:]], tf.float32)
        self.forward = tf.function(lambda x: self.network(x, training=False), input_signature=[spec])
        best_path = os.path.join(run_dir, "best.json")
        self.best = read_json(best_path)["val_loss"] if os.path.exists(best_path) else np.inf

    def on_epoch_end(self, epoch, logs=None):
        images = self.samples["image"]
        pieces = [self.forward(normalize(images[i:i + 2048])) for i in range(0, len(images), 2048)]
        outputs = {key: np.concatenate([p[key].numpy() for p in pieces]) for key in pieces[0]}
        figures = validation_metrics(outputs, self.samples, self.weights)
        logs.update(figures)
        if figures["val_loss"] < self.best:
            self.best = figures["val_loss"]
            self.network.save(os.path.join(self.run_dir, BEST_MODEL))
            write_json(os.path.join(self.run_dir, "best.json"), {**figures, "epoch": epoch + 1})


def save_augmented_preview(dataset, stage: str, path: str) -> None:
    """The first training batch as the network sees it (after jitter), grouped by kind with the decoded face."""
    images, targets = next(iter(dataset))
    pixels = np.uint8(np.clip(images.numpy() * 128 + 127.5, 0, 255))
    samples = [schema.MtcnnSample("", int(k), image, box, marks) for k, image, box, marks in
               zip(targets["kind"].numpy(), pixels, targets["box"].numpy(), targets["landmarks"].numpy())]
    write_sample_preview(path, samples, stage)


def train_mtcnn_stage(spec: ModelSpec, config: Config, train_dirs: list[str], val_dirs: list[str],
                      run_dir: str) -> dict:
    """Fit one MTCNN stage; returns metrics.json's content (best val loss and epoch, epochs run, seconds)."""
    keras.utils.set_random_seed(config.train.seed)
    stage = spec.name.removeprefix("mtcnn_")
    prepare_run(config, run_dir)
    finished = finished_metrics(run_dir)
    if finished is not None:
        return finished
    counts = kind_counts(train_dirs, stage)
    network = spec.build(**config.model_args)
    start_from_weights(network, config.train.init_weights)
    train_ds = training_dataset(train_dirs, stage, config)
    samples = validation_samples(val_dirs, stage)
    save_augmented_preview(train_ds, stage, os.path.join(run_dir, "augmented_batch.jpg"))
    steps = config.train.steps_per_epoch or max(1, sum(counts.values()) // config.data.batch_size)

    weights = LOSS_WEIGHTS[spec.name]
    trainer = StageTrainer(network, weights)
    size = STAGE_SIZES[stage]
    trainer(tf.zeros((1, size, size, 3)))  # BackupAndRestore needs a built model
    trainer.compile(optimizer=make_optimizer(config.optimizer,
                                             learning_rate(config.schedule, steps * config.train.epochs)))
    fitted = fit_run(trainer, train_ds, config, steps, StageValidation(network, samples, weights, run_dir), run_dir)
    best = read_json(os.path.join(run_dir, "best.json"))
    metrics = {"model": spec.name, "best_val_loss": best["val_loss"], "best_epoch": best["epoch"], "best": best,
               **fitted, "train_samples": counts, "val_samples": int(len(samples["kind"])),
               "train_dirs": train_dirs, "val_dirs": val_dirs}
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    return metrics
