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

Detection records (`--task detection`, one record = one whole image; manifest "task": "detection"):
  image/encoded      bytes     the source file's bytes (JPEG or PNG) when no resize was needed, else a JPEG
  image/source_id    bytes     image path relative to the converter's --input
  image/source_hw    int64[2]  height, width of the stored image
  faces/box_xyxy     float[4F] face boxes in pixels of the stored image (continuous coordinates)
  faces/landmarks    float[10F] five points per face (facekit.landmarks.FIVE order) as x0, y0, ..., NaN if absent
  faces/flags        int64[6F] WIDER FACE flags per face: blur, expression, illumination, invalid, occlusion, pose;
                               -1 where the format does not say

MTCNN training samples (`python -m tfrecords_tools.mtcnn_samples`, one record = one window; manifest "task":
"mtcnn_samples"):
  image/raw          bytes     the window resized to S x S (12, 24 or 48) as RGB uint8, row-major (S*S*3 bytes)
  sample/source      bytes     record folder name / source id of the image it was cut from
  sample/kind        int64     0 negative, 1 positive, 2 part, 3 landmark (SampleKind below)
  sample/box         float[4]  box offsets to its face in the cascade's convention (facekit.infer.mtcnn.
                               training_targets); zero for negatives
  sample/landmarks   float[10] x1..x5, y1..y5 as fractions of the window (same convention); zero unless landmark

TensorFlow is imported inside the functions that need it, so conversion workers (which build and serialise
records) start without it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

# the folder layout, read together with the schema: records.schema.load_manifest(...) etc.
from facekit.records.manifest import MANIFEST, SCHEMA_VERSION, load_manifest, shard_name, stray_shards  # noqa: F401
from facekit.records.verify import require_intact

NUM_ATTRIBUTES = 6
NUM_FACE_FLAGS = 6
FACE_FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


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


@dataclass
class DetectionRecord:
    """One image with its faces before serialisation: boxes_xyxy (F, 4), landmarks_px (F, 5, 2) (NaN where
    absent), flags (F, 6) int (-1 unknown). `dropped` lists faces left out and why (for the manifest)."""

    source_id: str
    image_bytes: bytes
    source_hw: tuple[int, int]
    boxes_xyxy: np.ndarray
    landmarks_px: np.ndarray
    flags: np.ndarray
    dropped: list[str]


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


def _example(features: dict) -> bytes:
    entries = b"".join(_field(1, _field(1, key.encode()) + _field(2, value)) for key, value in features.items())
    return _field(1, entries)


def encode_example(record: CropRecord) -> bytes:
    """CropRecord -> serialised tf.train.Example, written directly in protobuf wire format.

    Equivalent to building tf.train.Example (tests compare the parsed messages); done by hand so that conversion
    workers serialise without importing TensorFlow and the writing process only writes bytes.
    """
    return _example({
        "image/encoded": _bytes(record.jpeg),
        "image/source_id": _bytes(record.source_id.encode("utf-8")),
        "image/source_hw": _ints(record.source_hw),
        "landmarks/points": _floats(np.ravel(record.points_norm)),
        "crop/box_xyxy": _floats(record.box_xyxy),
        "pose/euler_rad": _floats(record.pose_rad),
        "pose/estimated": _ints([int(record.pose_estimated)]),
        "attributes/flags": _ints(record.attributes),
    })


class SampleKind(IntEnum):
    """Stored in each record; decides which losses a sample feeds (face: negative/positive, box: positive/part,
    landmarks: landmark)."""

    NEGATIVE = 0
    POSITIVE = 1
    PART = 2
    LANDMARK = 3


@dataclass
class MtcnnSample:
    """One MTCNN training window before serialisation: image (S, S, 3) uint8 RGB, box (4,), landmarks (10,)."""

    source: str
    kind: int
    image: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray


def encode_mtcnn_sample(sample: MtcnnSample) -> bytes:
    return _example({
        "image/raw": _bytes(np.ascontiguousarray(sample.image, np.uint8).tobytes()),
        "sample/source": _bytes(sample.source.encode("utf-8")),
        "sample/kind": _ints([sample.kind]),
        "sample/box": _floats(sample.box),
        "sample/landmarks": _floats(sample.landmarks),
    })


def parse_mtcnn_samples(serialized, size: int) -> dict:
    """A batch of serialised MTCNN samples (B,) -> image (B, S, S, 3) uint8, kind (B,) int32, box (B, 4),
    landmarks (B, 10) float32, source (B,) string."""
    import tensorflow as tf

    f = tf.io.parse_example(serialized, {
        "image/raw": tf.io.FixedLenFeature([], tf.string),
        "sample/source": tf.io.FixedLenFeature([], tf.string),
        "sample/kind": tf.io.FixedLenFeature([], tf.int64),
        "sample/box": tf.io.FixedLenFeature([4], tf.float32),
        "sample/landmarks": tf.io.FixedLenFeature([10], tf.float32),
    })
    image = tf.reshape(tf.io.decode_raw(f["image/raw"], tf.uint8), [-1, size, size, 3])
    return {"image": image, "kind": tf.cast(f["sample/kind"], tf.int32), "box": f["sample/box"],
            "landmarks": f["sample/landmarks"], "source": f["sample/source"]}


def encode_detection_example(record: DetectionRecord) -> bytes:
    """DetectionRecord -> serialised tf.train.Example (same hand-written wire format as encode_example)."""
    return _example({
        "image/encoded": _bytes(record.image_bytes),
        "image/source_id": _bytes(record.source_id.encode("utf-8")),
        "image/source_hw": _ints(record.source_hw),
        "faces/box_xyxy": _floats(np.ravel(record.boxes_xyxy)),
        "faces/landmarks": _floats(np.ravel(record.landmarks_px)),
        "faces/flags": _ints(np.ravel(record.flags)),
    })


def parse_detection_example(serialized, decode_image: bool = True) -> dict:
    """Serialised detection example -> dict: image (H, W, 3) uint8 RGB (or `image/encoded` bytes), boxes_xyxy
    (F, 4) float32, landmarks_px (F, 5, 2) float32 (NaN where absent), flags (F, 6) int64, source_hw (2,) int64,
    source_id () string."""
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/source_id": tf.io.FixedLenFeature([], tf.string),
        "image/source_hw": tf.io.FixedLenFeature([2], tf.int64),
        "faces/box_xyxy": tf.io.VarLenFeature(tf.float32),
        "faces/landmarks": tf.io.VarLenFeature(tf.float32),
        "faces/flags": tf.io.VarLenFeature(tf.int64),
    }
    f = tf.io.parse_single_example(serialized, spec)
    out = {
        "boxes_xyxy": tf.reshape(tf.sparse.to_dense(f["faces/box_xyxy"]), [-1, 4]),
        "landmarks_px": tf.reshape(tf.sparse.to_dense(f["faces/landmarks"]), [-1, 5, 2]),
        "flags": tf.reshape(tf.sparse.to_dense(f["faces/flags"]), [-1, NUM_FACE_FLAGS]),
        "source_hw": f["image/source_hw"],
        "source_id": f["image/source_id"],
    }
    if decode_image:
        image = tf.io.decode_image(f["image/encoded"], channels=3, expand_animations=False)
        out["image"] = tf.ensure_shape(image, [None, None, 3])
    else:
        out["image/encoded"] = f["image/encoded"]
    return out


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


def record_files(record_dir: str) -> list[str]:
    """The shard files listed in the folder's manifest, in order, after the fast integrity check (once per
    process): facekit.records.verify.DamagedRecordsError names any missing, cut or altered shard and the fix."""
    require_intact(record_dir)
    return [os.path.join(record_dir, s["file"]) for s in load_manifest(record_dir)["shards"]]


def read_records(record_dir: str, decode_image: bool = True) -> list[dict]:
    """Every record of a converted folder as numpy dicts, in file order (tests, notebooks, small sets)."""
    import tensorflow as tf

    num_points = load_manifest(record_dir)["num_points"]
    ds = tf.data.TFRecordDataset(record_files(record_dir))
    ds = ds.map(lambda s: parse_example(s, num_points, decode_image))
    return list(ds.as_numpy_iterator())

