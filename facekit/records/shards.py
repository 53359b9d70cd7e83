"""Per-sample work and shard writing, shared by the local converter (facekit.records.convert) and the Beam runner
(facekit.records.beam_runner): a worker converts one item into its record and serialised example (or the reason
it was skipped); a shard is written under a temporary name and renamed when complete."""
from __future__ import annotations

import os

import cv2

from facekit.records.datasets import SampleError
from facekit.records.manifest import shard_name
from facekit.records.verify import shard_digest

PREVIEW = "preview.jpg"


class ConversionError(RuntimeError):
    """The conversion produced nothing (every sample skipped) or its output folder is in the way."""


# ---------------------------------------------------------------- one sample (runs in the workers)


_WORKER: dict = {}


def init_worker(input_dir: str, settings) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(input_dir=input_dir, settings=settings)


def convert_item(item) -> tuple[object, bytes] | str:
    """Worker task: the record and its serialised example, or the reason the sample was skipped."""
    settings = _WORKER["settings"]
    try:
        record = settings.prepare(_WORKER["input_dir"], item)
    except (SampleError, cv2.error) as err:
        return str(err)
    return record, settings.encode(record)


# ---------------------------------------------------------------- the whole dataset (main process)


def item_name(item) -> str:
    """How an item is named in the manifest: its relative path, or the first field (source id, image path) of a
    tuple item."""
    return item if isinstance(item, str) else item[0]


def write_shard(output_dir: str, file_name: str, results: list, settings, expected: dict | None = None) -> dict:
    """Write one shard atomically; returns its entry {file, num_records, bytes, sha256, skipped} plus the job's
    own per-shard fields (settings.shard_fields: faces for detection records, sample kinds for MTCNN samples).
    An item's serialised payload is one example, or a list of examples (MTCNN: many samples per image).
    `expected` (repair): the manifest's entry the new shard must equal, else nothing is replaced."""
    import tensorflow as tf

    path = os.path.join(output_dir, file_name)
    skipped, count, converted = [], 0, []
    with tf.io.TFRecordWriter(path + ".tmp") as writer:
        for source, result in results:
            if isinstance(result, str):
                skipped.append({"source": source, "reason": result})
                continue
            payload = result[1] if isinstance(result[1], list) else [result[1]]
            for example in payload:
                writer.write(example)
            count += len(payload)
            converted.append((source, result[0]))
    digest = shard_digest(path + ".tmp")
    if expected is not None and (count, digest["sha256"]) != (expected["num_records"], expected.get("sha256",
                                                                                                  digest["sha256"])):
        os.remove(path + ".tmp")
        raise ConversionError(f"{path}: converted again, it differs from the manifest ({count} records, "
                              f"{expected['num_records']} recorded): the input or the code changed since the "
                              f"conversion; convert the folder again with --overwrite")
    os.replace(path + ".tmp", path)
    extra = settings.shard_fields(converted) if hasattr(settings, "shard_fields") else {}
    return {"file": file_name, "num_records": count, **digest, "skipped": skipped, **extra}


def write_shard_and_preview(output_dir: str, name: str, k: int, num_shards: int, results: list, settings) -> dict:
    """write_shard for shard k of num_shards; shard 0's converted samples also make the preview picture."""
    entry = write_shard(output_dir, shard_name(name, k, num_shards), results, settings)
    if k == 0:
        settings.write_preview(os.path.join(output_dir, PREVIEW), [r for _, r in results if not isinstance(r, str)])
    return entry
