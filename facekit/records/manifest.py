"""A converted record folder's layout: numbered shard names and manifest.json (record counts, skipped samples,
shard sizes and checksums, the exact settings), shared by every kind of record (facekit.records.schema)."""
from __future__ import annotations

import glob
import os

from facekit.files import read_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def shard_name(name: str, index: int, count: int) -> str:
    return f"{name}-{index:05d}-of-{count:05d}.tfrecord"


def load_manifest(record_dir: str, task: str | None = None) -> dict:
    """The manifest of a converted folder; ValueError if it is missing, of another schema version, or (with
    `task`) holds another kind of record ("landmarks": face crops, "detection": whole images)."""
    path = os.path.join(record_dir, MANIFEST)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no manifest; is {record_dir} a converted record folder?")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards", []), list):
        raise ValueError(f"{path}: not a manifest (no shard list); the file is damaged: convert the folder again")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {manifest.get('schema_version')}, this code reads "
                         f"{SCHEMA_VERSION}; convert the data again")
    found = manifest.get("task", "landmarks")
    if task is not None and found != task:
        raise ValueError(f"{record_dir} holds {found} records, but {task} records are needed here "
                         f"(python -m tfrecords_tools.convert --task {task} ...)")
    return manifest


def stray_shards(record_dir: str) -> list[str]:
    """Shard or temporary files in the folder (used to refuse mixing two conversions in one folder)."""
    return sorted(glob.glob(os.path.join(record_dir, "*.tfrecord*")))


def jaw_convention(manifest: dict) -> str:
    """Where the jaw points of a turned face lie in these records, and so what a model trained on them predicts:
    "visible outline" (the face's edge on the side turned away: 300W's hand markup, 300W-LP's pt2d and pts_2d,
    WFLW) or "3D keypoints" (the jaw on the face surface, behind the cheek at large yaw: AFLW2000-3D, 300W-LP's
    pts_3d); "none" for point sets without a jaw (five points)."""
    settings = manifest.get("fingerprint", {}).get("settings", {})
    if manifest.get("scheme") == "five" or settings.get("points") == "five":
        return "none"
    if manifest.get("format") == "aflw2000" or settings.get("reader", {}).get("landmarks_source") == "pts_3d":
        return "3D keypoints"
    return "visible outline"
