"""THE landmark TFRecord schema: feature keys, the writer-side encoder and the tf.data parser, side by side.

One record = one face crop:
  image/encoded      bytes     JPEG of the square crop (RGB once decoded)
  image/source_id    bytes     image path relative to the converter's --input ("#N" for the N-th face)
  image/source_hw    int64[2]  height, width of the source image
  landmarks/points   float[2K] x0, y0, x1, y1, ... normalised to the crop: 0 and 1 are its edges
  crop/box_xyxy      float[4]  the crop in source pixels (continuous coordinates, facekit.geometry); a point
                               maps back as box[:2] + points * (box[2:] - box[:2])
  pose/euler_rad     float[3]  pitch, yaw, roll (300W-LP convention, facekit.pose)
  pose/estimated     int64     1 when the pose was estimated from the landmarks, 0 when annotated
  attributes/flags   int64[6]  WFLW flags (pose, expression, illumination, make-up, occlusion, blur); -1 unknown

TensorFlow is imported inside the functions that need it, so conversion workers (which build and serialise
records) start without it.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 1
NUM_ATTRIBUTES = 6
MANIFEST = "manifest.json"


@dataclass
class CropRecord:
    """The values of one record before serialisation (shapes as in the module docstring)."""

    source_id: str
    jpeg: bytes
    source_hw: tuple[int, int]
    points_norm: np.ndarray  # (K, 2)
    box_xyxy: np.ndarray  # (4,)
    pose_rad: np.ndarray  # (3,)
    pose_estimated: bool
    attributes: tuple[int, ...]  # (6,)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negative int64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# A Feature is {bytes_list=1 | float_list=2 | int64_list=3}, each list holding its (packed) values in field 1.
def _bytes(value: bytes) -> bytes:
    return _field(1, _field(1, value))


def _floats(values) -> bytes:
    return _field(2, _field(1, np.asarray(values, "<f4").tobytes()))


def _ints(values) -> bytes:
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in np.ravel(values))))


def encode_example(record: CropRecord) -> bytes:
    """CropRecord -> serialised tf.train.Example, written directly in protobuf wire format.

    Equivalent to building tf.train.Example (tests compare the parsed messages); done by hand so that conversion
    workers serialise without importing TensorFlow and the writing process only writes bytes.
    """
    features = {
        "image/encoded": _bytes(record.jpeg),
        "image/source_id": _bytes(record.source_id.encode("utf-8")),
        "image/source_hw": _ints(record.source_hw),
        "landmarks/points": _floats(np.ravel(record.points_norm)),
        "crop/box_xyxy": _floats(record.box_xyxy),
        "pose/euler_rad": _floats(record.pose_rad),
        "pose/estimated": _ints([int(record.pose_estimated)]),
        "attributes/flags": _ints(record.attributes),
    }
    entries = b"".join(_field(1, _field(1, key.encode()) + _field(2, value)) for key, value in features.items())
    return _field(1, entries)


def parse_example(serialized, num_points: int, decode_image: bool = True) -> dict:
    """Serialised example (scalar string tensor) -> dict of tensors, for tf.data `map`.

    Returns image (H, W, 3) uint8 RGB (or `image/encoded` bytes when decode_image is False), points_norm
    (K, 2) float32, box_xyxy (4,), pose_rad (3,), pose_estimated () int64, attributes (6,) int64,
    source_hw (2,) int64, source_id () string.
    """
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/source_id": tf.io.FixedLenFeature([], tf.string),
        "image/source_hw": tf.io.FixedLenFeature([2], tf.int64),
        "landmarks/points": tf.io.FixedLenFeature([2 * num_points], tf.float32),
        "crop/box_xyxy": tf.io.FixedLenFeature([4], tf.float32),
        "pose/euler_rad": tf.io.FixedLenFeature([3], tf.float32),
        "pose/estimated": tf.io.FixedLenFeature([], tf.int64),
        "attributes/flags": tf.io.FixedLenFeature([NUM_ATTRIBUTES], tf.int64),
    }
    f = tf.io.parse_single_example(serialized, spec)
    out = {
        "points_norm": tf.reshape(f["landmarks/points"], [num_points, 2]),
        "box_xyxy": f["crop/box_xyxy"],
        "pose_rad": f["pose/euler_rad"],
        "pose_estimated": f["pose/estimated"],
        "attributes": f["attributes/flags"],
        "source_hw": f["image/source_hw"],
        "source_id": f["image/source_id"],
    }
    if decode_image:
        out["image"] = tf.io.decode_jpeg(f["image/encoded"], channels=3)
    else:
        out["image/encoded"] = f["image/encoded"]
    return out


def shard_name(name: str, index: int, count: int) -> str:
    return f"{name}-{index:05d}-of-{count:05d}.tfrecord"


def load_manifest(record_dir: str) -> dict:
    """The manifest of a converted folder; ValueError if it is missing or of another schema version."""
    path = os.path.join(record_dir, MANIFEST)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no manifest; is {record_dir} a converted record folder?")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {manifest.get('schema_version')}, this code reads "
                         f"{SCHEMA_VERSION}; convert the data again")
    return manifest


def record_files(record_dir: str) -> list[str]:
    """The shard files listed in the folder's manifest, in order."""
    manifest = load_manifest(record_dir)
    files = [os.path.join(record_dir, s["file"]) for s in manifest["shards"]]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"{record_dir}: manifest lists missing shard(s) {missing[:3]}")
    return files


def read_records(record_dir: str, decode_image: bool = True) -> list[dict]:
    """Every record of a converted folder as numpy dicts, in file order (tests, notebooks, small sets)."""
    import tensorflow as tf

    num_points = load_manifest(record_dir)["num_points"]
    ds = tf.data.TFRecordDataset(record_files(record_dir))
    ds = ds.map(lambda s: parse_example(s, num_points, decode_image))
    return list(ds.as_numpy_iterator())


def stray_shards(record_dir: str) -> list[str]:
    """Shard or temporary files in the folder (used to refuse mixing two conversions in one folder)."""
    return sorted(glob.glob(os.path.join(record_dir, "*.tfrecord*")))
