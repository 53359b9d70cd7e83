"""Training engine behind training/train.py: one fit loop for every registered landmark model.

A run directory holds config.yaml (resolved), codec.json, best.keras (+ best.json), metrics.json, log.csv,
augmented_batch.jpg (what the model sees), tensorboard/ and backup/ (BackupAndRestore state, so an interrupted
run resumes where it stopped).
"""
from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from facekit import distribute
from facekit.codecs import codec_from_dict
from facekit.config import Config, OptimizerConfig, ScheduleConfig, load_config, save_config
from facekit.files import read_json, read_yaml, write_json

BEST_MODEL = "best.keras"


class NetworkTrainer(keras.Model):
    """Wraps a network so that Keras' fit computes a loss on its named outputs: objective(y_pred, y) -> (total,
    parts); the parts named in part_names are logged next to the total. The network's outputs are float32 (also
    under mixed precision), and the loss is this replica's share of the global one (facekit.distribute)."""

    part_names: tuple[str, ...] = ()

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.part_trackers = {name: keras.metrics.Mean(name=name) for name in self.part_names}

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def objective(self, y_pred, y):
        raise NotImplementedError

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, parts = self.objective(y_pred, y)
        for name, tracker in self.part_trackers.items():
            tracker.update_state(parts[name])
        if self.losses:
            total = total + tf.cast(tf.add_n(self.losses), total.dtype)
        return distribute.replica_share(total)

    @property
    def metrics(self):
        return super().metrics + list(self.part_trackers.values())


def learning_rate(config: ScheduleConfig, total_steps: int):
    if config.name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(config.lr, config.decay_steps, config.decay_rate,
                                                           staircase=True)
    if config.name == "cosine":
        warmup = min(config.warmup_steps, total_steps - 1)
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else config.lr, max(1, total_steps - warmup), alpha=config.final_fraction,
            warmup_target=config.lr if warmup else None, warmup_steps=warmup)
    if config.name == "piecewise":
        if len(config.values) != len(config.boundaries) + 1:
            raise ValueError(f"piecewise schedule: {len(config.values)} values for {len(config.boundaries)} "
                             "boundaries; need one more value than boundaries")
        return keras.optimizers.schedules.PiecewiseConstantDecay(list(config.boundaries), list(config.values))
    if config.name == "constant":
        return config.lr
    raise ValueError(f"unknown schedule {config.name!r}; choose from exponential, cosine, piecewise, constant")


def make_optimizer(config: OptimizerConfig, lr):
    if config.name == "adam":
        return keras.optimizers.Adam(lr, clipnorm=config.clipnorm)
    if config.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, clipnorm=config.clipnorm)
    raise ValueError(f"unknown optimizer {config.name!r}; choose from adam, adamw")


class TimeBudget(keras.callbacks.Callback):
    """Keeps training inside max_minutes: stops after an epoch when one more epoch as long as the longest so far
    would end past the budget. A session's first epoch also traces the step and fills the cache (pfld_025: 105 s
    against 46 s after it), so once later epochs exist the estimate leaves it out. With a run folder, the minutes
    of earlier (interrupted) sessions count too: they are kept in RUN/elapsed.json, so a resumed run keeps one
    budget."""

    def __init__(self, max_minutes: float | None, run_dir: str | None = None):
        super().__init__()
        self.max_minutes, self.start = max_minutes, time.monotonic()
        self.path = os.path.join(run_dir, "elapsed.json") if run_dir else None
        earlier = read_json(self.path) if self.path and os.path.exists(self.path) else {}
        self.before = self.seconds = earlier.get("seconds", 0.0)  # seconds: all sessions of the run so far
        self.epochs = earlier.get("epochs", 0)
        self.durations, self.epoch_start = [], self.start  # this session's epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def next_epoch_estimate(self) -> float:
        return max(self.durations[1:] or self.durations)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.seconds = seconds = self.before + now - self.start
        self.epochs = epoch + 1
        self.durations.append(now - self.epoch_start)
        if self.path:
            write_json(self.path, {"seconds": round(seconds, 1), "epochs": self.epochs})
        estimate = self.next_epoch_estimate()
        if self.max_minutes is not None and seconds + estimate > 60 * self.max_minutes:
            print(f"time budget of {self.max_minutes} min: {seconds:.0f} s used after epoch {epoch + 1} and another "
                  f"epoch would take about {estimate:.0f} s; stopping")
            self.model.stop_training = True


def prepare_run(config: Config, run_dir: str):
    """Create or reopen a run: a rerun must have the same config; the codec is fitted once and saved."""
    os.makedirs(run_dir, exist_ok=True)
    config_path, codec_path = os.path.join(run_dir, "config.yaml"), os.path.join(run_dir, "codec.json")
    if os.path.exists(config_path):
        if load_config(config_path).to_dict() != config.to_dict():  # keys added since take their defaults
            raise ValueError(f"{run_dir} holds a run with another config ({config_path}); use a new --out")
    save_config(config, config_path)
    if os.path.exists(codec_path):
        return codec_from_dict(read_json(codec_path))
    return None


def start_from_weights(network, path: str | None) -> None:
    """Load train.init_weights into a freshly built network: a run folder (its best.keras) or a .keras file of
    the same architecture. Only the weights carry over; the optimizer and schedule start anew (a warm restart)."""
    if path is None:
        return
    weights = os.path.join(path, BEST_MODEL) if os.path.isdir(path) else path
    if not os.path.isfile(weights):
        raise ValueError(f"train.init_weights: {weights} does not exist")
    try:
        network.load_weights(weights)
    except ValueError as error:
        raise ValueError(f"train.init_weights: {weights} does not fit {network.name}: {error}") from None


def finished_metrics(run_dir: str) -> dict | None:
    """metrics.json of a run that has finished already (printing that it is reused), else None."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    print(f"{run_dir} has finished already (metrics.json); use a new --out to train again")
    return read_json(path)


def fit_run(trainer, train_ds, config, steps: int, validation, run_dir: str) -> dict:
    """Fit with a run's callbacks: `validation` (best checkpoint), backup for resuming, CSV log, TensorBoard,
    the time budget, stop on NaN. Returns epochs_run and train_seconds over every session of the run (a resumed
    run counts its earlier ones) and this session's history."""
    budget = TimeBudget(config.train.max_minutes, run_dir)
    callbacks = [validation, keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
                 keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
                 keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False),
                 budget, keras.callbacks.TerminateOnNaN()]
    if tf.distribute.has_strategy():
        history = fit_distributed(trainer, train_ds, config.train.epochs, steps, callbacks)
    else:
        history = trainer.fit(train_ds, epochs=config.train.epochs, steps_per_epoch=steps, callbacks=callbacks,
                              shuffle=False, verbose=1 if sys.stdout.isatty() else 2).history
    return {"epochs_run": budget.epochs, "train_seconds": round(budget.seconds, 1),
            "history": {k: [float(v) for v in vs] for k, vs in history.items()}}


def fit_distributed(trainer, train_ds, epochs: int, steps: int, callbacks) -> dict:
    """Keras' fit under a tf.distribute strategy, which Keras 3.15's own gets wrong: under
    MultiWorkerMirroredStrategy it fails (its symbolic build converts PerReplica values, and reduce_per_replica
    reduces the step outputs over a dimension they lack), and under MirroredStrategy that symbolic build takes
    the first batch off the training iterator, so the run no longer sees the batches of one device. This loop
    runs the same trainer.train_step under strategy.run, an epoch per call, and drives the same callbacks.
    Every worker reads the whole input and keeps its slice of each global batch (tf.data DATA sharding), so the
    batches are those of one device. Returns the history {name: [value per epoch]}."""
    strategy = tf.distribute.get_strategy()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.experimental_distribute_dataset(train_ds.with_options(options)))
    trainer.optimizer.build(trainer.trainable_variables)  # creating them inside the loop's function fails

    @tf.function
    def train_steps(iterator):
        for _ in tf.range(steps):
            strategy.run(trainer.train_step, args=(next(iterator),))

    history = keras.callbacks.History()  # last, so that it records what the other callbacks add to the logs
    callback_list = keras.callbacks.CallbackList(callbacks + [history], model=trainer, epochs=epochs, steps=steps)
    trainer.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(trainer._initial_epoch or 0, epochs):  # BackupAndRestore sets _initial_epoch, as for fit
        trainer.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        train_steps(iterator)
        logs = {metric.name: float(metric.result()) for metric in trainer.metrics}
        callback_list.on_epoch_end(epoch, logs)
        print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v[-1]:.4g}" for k, v in history.history.items()),
              flush=True)
        # every worker must leave together: a worker still stepping would wait for the others forever
        if any_worker_stops(trainer.stop_training or not np.isfinite(logs["loss"])):
            break
    callback_list.on_train_end()
    return history.history


def any_worker_stops(stop: bool) -> bool:
    """True on every worker when any worker passes stop=True."""
    return float(sum_over_replicas(tf.constant(float(stop)))) > 0


@tf.function
def sum_over_replicas(value):
    strategy = tf.distribute.get_strategy()
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(value,)), axis=None)


def load_run_files(run_dir: str):
    """A run's (codec, config dict); ValueError when the run has no best model yet."""
    for name in (BEST_MODEL, "codec.json", "config.yaml"):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise ValueError(f"{run_dir}: no {name}; is this a run folder that has finished an epoch?")
    codec = codec_from_dict(read_json(os.path.join(run_dir, "codec.json")))
    config = read_yaml(os.path.join(run_dir, "config.yaml"))
    return codec, config


def load_run(run_dir: str):
    """A finished run's (network from best.keras, codec, config dict)."""
    codec, config = load_run_files(run_dir)
    return keras.saving.load_model(os.path.join(run_dir, BEST_MODEL), compile=False), codec, config
