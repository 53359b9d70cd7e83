"""Where training runs: TF's own device placement, MirroredStrategy over the local GPUs, or
MultiWorkerMirroredStrategy over the machines named in TF_CONFIG; and mixed precision.

The config's batch size is global: each of R replicas gets batch_size / R samples and computes its loss as a mean
over them, the replicas' gradients are summed, so every loss is divided by R (replica_share) to give the
gradient of the global mean. BatchNormalization is synchronised over replicas (models.backbones.batch_norm), so
R replicas follow the single-device run with the same global batch up to float rounding.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: TF's placement on one device; mirrored: every local GPU (every logical CPU when there is no GPU,
    which is how the tests run it); multi_worker: the cluster in TF_CONFIG, every local GPU of each worker.
    Create it before any other TensorFlow op runs (MultiWorkerMirroredStrategy's collectives require that)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multi_worker reads the cluster from the TF_CONFIG environment variable "
                             "(cluster: {worker: [host:port, ...]}, task: {type: worker, index: i}); it is not set")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def replicas() -> int:
    """Replicas of the current strategy (1 outside any)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_share(loss):
    """A replica's loss (mean over its part of the global batch) as its share of the global mean loss."""
    count = replicas()
    return loss / count if count > 1 else loss


def is_multi_worker(strategy=None) -> bool:
    strategy = strategy or tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy=None) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster (the chief, or worker 0 when the
    cluster has no chief, writes the run folder)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def check_global_batch(batch_size: int, count: int) -> None:
    """batch_size is global: it must split evenly over the count replicas."""
    if batch_size % count:
        raise ValueError(f"data.batch_size {batch_size} is the global batch and must split evenly over the "
                         f"{count} replicas; use a multiple of {count}")


def worker_run_dir(run_dir: str) -> str:
    """A scratch folder for a non-chief worker, started from the chief's state in RUN (backup, codec, best
    validation figure, time used): every worker saves what the chief saves (saving runs collective ops that all
    workers must join) but only the chief's copy is kept. The caller removes the folder."""
    scratch = tempfile.mkdtemp(prefix="facekit-worker-")
    if os.path.isdir(os.path.join(run_dir, "backup")):
        shutil.copytree(os.path.join(run_dir, "backup"), os.path.join(scratch, "backup"))
    for name in ("codec.json", "best.json", "elapsed.json"):
        if os.path.exists(os.path.join(run_dir, name)):
            shutil.copy(os.path.join(run_dir, name), scratch)
    return scratch


def use_mixed_precision() -> None:
    """mixed_float16 for every model built from now on: float16 compute, float32 weights and outputs, loss
    scaling by Keras (compile wraps the optimizer in a LossScaleOptimizer). Refused without a GPU: a CPU has no
    float16 arithmetic to gain from and runs it slower."""
    if not tf.config.list_physical_devices("GPU"):
        raise ValueError("--mixed-precision needs a GPU (float16 is slower than float32 on a CPU); TensorFlow "
                         "sees none here. Install requirements-gpu.txt on a machine with a CUDA GPU")
    keras.mixed_precision.set_global_policy("mixed_float16")
