"""tf.data pipelines from converted record folders to model inputs and codec targets.

read (parallel interleave over shards) -> parse -> resize to the model input -> cache -> shuffle -> repeat ->
augment with per-element stateless seeds -> encode targets -> batch -> prefetch.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import tensorflow as tf

from facekit.alignment.augment import augment
from facekit.config import AugmentConfig, DataConfig
from facekit.landmarks import LandmarkScheme, get_scheme
from facekit.records import schema
from facekit.records.verify import naming_damaged_shards

AUTOTUNE = tf.data.AUTOTUNE


def record_scheme(record_dirs: list[str]) -> LandmarkScheme:
    """The one landmark scheme of a list of converted folders; ValueError if they disagree."""
    schemes = {d: schema.load_manifest(d, task="landmarks")["scheme"] for d in record_dirs}
    if len(set(schemes.values())) != 1:
        raise ValueError(f"record folders mix landmark schemes: {schemes}")
    return get_scheme(next(iter(schemes.values())))


def count_records(record_dirs: list[str]) -> int:
    return sum(schema.load_manifest(d)["num_records"] for d in record_dirs)


def read_crops(record_dirs: list[str], input_size: int, parallel_reads: int = 4, decode: bool = True):
    """Dataset of dicts: image (S, S, 3) uint8 resized to input_size (area), points_norm (K, 2), pose_rad (3,),
    attributes (6,), source_id. Order is deterministic (file order, interleaved in a fixed cycle)."""
    scheme = record_scheme(record_dirs)
    files = [f for d in record_dirs for f in schema.record_files(d)]
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(parallel_reads, len(files)), num_parallel_calls=AUTOTUNE,
        deterministic=True)

    def parse(serialized):
        example = schema.parse_example(serialized, scheme.num_points, decode_image=decode)
        if decode:
            image = example["image"]
            if image.shape[0] != input_size:
                image = tf.image.resize(image, [input_size, input_size], method="area")
            example["image"] = tf.cast(tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0, 255)), tf.uint8)
        return example

    return ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)


def _stack(ds, record_dirs: list[str], keys: tuple[str, ...]) -> dict:
    """A finite dataset of dicts -> {key: stacked numpy array}; ValueError naming the folders when empty."""
    with naming_damaged_shards(record_dirs):
        rows = list(ds.as_numpy_iterator())
    if not rows:
        raise ValueError(f"no records in {record_dirs}")
    return {key: np.stack([r[key] for r in rows]) for key in keys}


def read_annotations(record_dirs: list[str]) -> dict:
    """All annotations without decoding images: points_norm (N, K, 2), pose_rad (N, 3), attributes (N, 6)."""
    return _stack(read_crops(record_dirs, 0, decode=False), record_dirs, ("points_norm", "pose_rad", "attributes"))


def augmented_crops(record_dirs: list[str], input_size: int, data: DataConfig, augment_config: AugmentConfig,
                    seed: int):
    """Infinite shuffled, augmented samples: dict image (S, S, 3) float32 in [0, 255], points_norm (K, 2),
    pose_rad (3,) (moved with the image), attributes (6,), pose_rad_source (3,) (as recorded)."""
    scheme = record_scheme(record_dirs)
    permutation = tf.constant(scheme.flip_permutation, tf.int32)
    ds = read_crops(record_dirs, input_size, data.parallel_reads)
    if data.yaw_bins:
        ds = yaw_balanced(ds, record_dirs, data, seed)
    else:
        if data.cache:
            ds = ds.cache()
        ds = ds.shuffle(min(data.shuffle_buffer, count_records(record_dirs)), seed=seed).repeat()
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed).batch(2))

    def apply(example, element_seed):
        image, points, pose = augment(tf.cast(example["image"], tf.float32), example["points_norm"],
                                      example["pose_rad"], element_seed, augment_config, permutation)
        return {"image": image, "points_norm": points, "pose_rad": pose, "attributes": example["attributes"],
                "pose_rad_source": example["pose_rad"]}

    return ds.map(apply, num_parallel_calls=AUTOTUNE, deterministic=True)


def yaw_bin_counts(yaw_rad: np.ndarray, edges_deg) -> np.ndarray:
    """Samples per |yaw| bin: (len(edges) + 1,) for edges in degrees (bin i holds edges[i-1] <= |yaw| < edges[i])."""
    return np.bincount(np.searchsorted(np.asarray(edges_deg, float), np.abs(np.degrees(yaw_rad)), side="right"),
                       minlength=len(edges_deg) + 1)


def yaw_balanced(ds, record_dirs: list[str], data: DataConfig, seed: int):
    """Infinite samples drawn from the |yaw| bins of data.yaw_bins in the proportions of data.yaw_weights, each bin
    cached, shuffled and repeated on its own: profiled views of mostly frontal faces would otherwise be drawn as
    often as the data holds them. Empty bins are left out; ValueError when every weighted bin is empty."""
    edges = [float(e) for e in data.yaw_bins]
    weights = [float(w) for w in data.yaw_weights] or [1.0] * (len(edges) + 1)
    if len(weights) != len(edges) + 1 or edges != sorted(edges) or min(weights) < 0:
        raise ValueError(f"data.yaw_bins {list(data.yaw_bins)} needs ascending edges and data.yaw_weights one "
                         f"non-negative weight per bin ({len(edges) + 1}), got {list(data.yaw_weights)}")
    counts = yaw_bin_counts(read_annotations(record_dirs)["pose_rad"][:, 1], edges)
    edges_rad = tf.constant(np.radians(edges), tf.float32)
    parts, kept = [], []
    for index, (count, weight) in enumerate(zip(counts, weights)):
        if count == 0 or weight == 0:
            continue
        part = ds.filter(lambda example, i=index: tf.reduce_sum(
            tf.cast(tf.abs(example["pose_rad"][1]) >= edges_rad, tf.int32)) == i)
        if data.cache:
            part = part.cache()
        parts.append(part.shuffle(min(data.shuffle_buffer, int(count)), seed=seed + index).repeat())
        kept.append(weight)
    if not parts:
        raise ValueError(f"{record_dirs}: no samples in any weighted yaw bin (counts {counts.tolist()} for edges "
                         f"{edges}, weights {weights})")
    return tf.data.Dataset.sample_from_datasets(parts, [w / sum(kept) for w in kept], seed=seed)


def training_dataset(record_dirs: list[str], input_size: int, codec, data: DataConfig, augment_config: AugmentConfig,
                     seed: int, extra_targets=None):
    """Infinite batches of (image (B, S, S, 3) float32 in [0, 255], targets dict).

    extra_targets(sample) -> dict adds model-specific targets from an augmented_crops sample (PFLD's pose and
    balance weight).
    """
    def prepare(sample):
        targets = dict(codec.encode(sample["points_norm"]))
        if extra_targets is not None:
            targets.update(extra_targets(sample))
        return sample["image"], targets

    ds = augmented_crops(record_dirs, input_size, data, augment_config, seed)
    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(data.batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    threads = input_threads(data.pipeline_threads)
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        ds = ds.with_options(options)
    return ds


def input_threads(configured: int | None) -> int:
    """The landmark pipeline's private thread count (0: TF's shared pool). Unset (None), it is chosen from the
    machine: 1 on a CPU-only machine with at most 2 cores (measured there: the step keeps its threads), else 0."""
    if configured is not None:
        return configured
    small_cpu_only = (os.cpu_count() or 1) <= 2 and not tf.config.list_physical_devices("GPU")
    return 1 if small_cpu_only else 0


def evaluation_arrays(record_dirs: list[str], input_size: int, limit: int | None = None) -> dict:
    """Every record (or the first `limit`) as numpy: image (N, S, S, 3) uint8 at input_size, points_norm,
    pose_rad, source_id."""
    ds = read_crops(record_dirs, input_size)
    return _stack(ds.take(limit) if limit else ds, record_dirs, ("image", "points_norm", "pose_rad", "source_id"))


def synthetic_default(root: str = os.path.join("runs", "synthetic"), train_count: int = 1200,
                      val_count: int = 100) -> tuple[str, str]:
    """Generate and convert the built-in synthetic 300W-LP data once; returns (train_dir, val_dir)."""
    from facekit.records.convert import ConvertSettings, convert_dataset
    from facekit.records.synthetic import write_synthetic_300wlp

    dirs = []
    for split, count, seed in (("train", train_count, 0), ("val", val_count, 1)):
        raw, out = os.path.join(root, f"{split}_raw"), os.path.join(root, split)
        manifest = os.path.join(out, schema.MANIFEST)
        if os.path.exists(manifest) and schema.load_manifest(out)["num_records"] < count:  # made with fewer faces
            shutil.rmtree(raw, ignore_errors=True)
            shutil.rmtree(out)
        if not os.path.exists(manifest):
            if not os.path.isdir(raw):
                write_synthetic_300wlp(raw, count, seed=seed)
            convert_dataset(raw, out, ConvertSettings(format="300wlp", image_size=128), name="synthetic",
                            workers=1, progress=False)
        dirs.append(out)
    return dirs[0], dirs[1]
