"""Is a record folder intact? Each shard checked against what its manifest recorded at conversion.

Fast check (no TensorFlow; about 10 us a record, 4 s for 400k MTCNN windows): the file exists, has the recorded
byte size, and its record headers (TFRecord framing: uint64 length, masked CRC-32C of the length, data, masked
CRC-32C of the data) chain from the first byte to the last with the recorded number of records. Deep check:
also the SHA-256 of the whole file and a full read in which TensorFlow checks every record's data CRC.

Manifests written before shard sizes and checksums existed get the header walk and record count only.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import sys
from dataclasses import dataclass

from facekit.records.manifest import MANIFEST, load_manifest

_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of a few bytes (the length headers; pure Python)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class DamagedRecordsError(ValueError):
    """A record folder whose manifest or shards do not match: the message names folder, shard and fix."""


@dataclass
class ShardProblem:
    file: str  # shard file name as in the manifest
    problem: str  # one line: missing, wrong size, truncated record at offset N, ...


def shard_digest(path: str) -> dict:
    """{bytes, sha256} of a shard file, as the manifest records them."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return {"bytes": os.path.getsize(path), "sha256": sha.hexdigest()}


def walk_records(path: str) -> tuple[int, str | None]:
    """Count the records of a TFRecord file by its headers; (count, problem or None)."""
    size, count, offset = os.path.getsize(path), 0, 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(_HEADER)
            if len(header) < _HEADER:
                return count, f"truncated record at offset {offset} (file ends inside its header)"
            length_bytes, (crc,) = header[:8], struct.unpack("<I", header[8:])
            if masked_crc32c(length_bytes) != crc:
                return count, f"corrupted record header at offset {offset} (length checksum mismatch)"
            (length,) = struct.unpack("<Q", length_bytes)
            end = offset + _HEADER + length + _FOOTER
            if end > size:
                return count, f"truncated record at offset {offset} (needs {end - offset} bytes, " \
                              f"{size - offset} left)"
            f.seek(end)
            offset, count = end, count + 1
    return count, None


def _read_with_crc(path: str) -> str | None:
    """Read every record with TensorFlow (which checks each data CRC); its complaint, or None."""
    import tensorflow as tf

    try:
        for _ in tf.data.TFRecordDataset(path).batch(256):
            pass
    except tf.errors.DataLossError as err:
        return tf_read_problem(err.message)
    return None


def tf_read_problem(message: str) -> str:
    """TensorFlow's DataLossError text -> 'truncated record at offset N' (or the text on one line)."""
    found = re.search(r"(corrupted|truncated) record at (\d+)", message)
    return f"{found[1]} record at offset {found[2]}" if found else " ".join(message.split())


def check_shard(record_dir: str, entry: dict, deep: bool = False) -> str | None:
    """The first problem of one manifest shard entry ({file, num_records[, bytes, sha256]}), or None."""
    path = os.path.join(record_dir, entry["file"])
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    count, problem = walk_records(path)
    if problem:
        if "bytes" in entry and size != entry["bytes"]:
            problem += f"; {size} of {entry['bytes']} bytes"
        return problem
    if "bytes" in entry and size != entry["bytes"]:
        return f"wrong size: {size} bytes, the manifest says {entry['bytes']}"
    if count != entry["num_records"]:
        return f"wrong count: {count} records, the manifest says {entry['num_records']}"
    if not deep:
        return None
    found = _read_with_crc(path)
    if "sha256" in entry and shard_digest(path)["sha256"] != entry["sha256"]:
        return "checksum mismatch: SHA-256 differs from the manifest" + (f"; {found}" if found else "")
    return found


def verify_folder(record_dir: str, deep: bool = False) -> tuple[dict, list[ShardProblem]]:
    """(manifest, problems) for a converted folder; ValueError when the manifest itself is missing or broken."""
    manifest = load_manifest(record_dir)
    problems = []
    for entry in manifest["shards"]:
        problem = check_shard(record_dir, entry, deep)
        if problem:
            problems.append(ShardProblem(entry["file"], problem))
    return manifest, problems


def is_verifiable(manifest: dict) -> bool:
    return all("bytes" in s and "sha256" in s for s in manifest["shards"])


def repair_command(record_dir: str, manifest: dict) -> str:
    """How to rebuild the broken shards of this folder (the tool that wrote it, with --repair)."""
    if manifest.get("task") == "mtcnn_samples":
        return f"python -m tfrecords_tools.mtcnn_samples ... --out {record_dir} --repair"
    fingerprint = manifest.get("fingerprint", {})
    task = " --task detection" if manifest.get("task") == "detection" else ""
    fmt = fingerprint.get("settings", {}).get("format", "...")
    return (f"python -m tfrecords_tools.convert{task} --format {fmt} --input {fingerprint.get('input', '...')} "
            f"--output {record_dir} ... --repair (the other arguments as in the original conversion)")


def describe(record_dir: str, manifest: dict, problems: list[ShardProblem]) -> str:
    lines = [f"{record_dir}: {len(problems)} of {len(manifest['shards'])} shard(s) damaged:"]
    lines += [f"  {p.file}: {p.problem}" for p in problems]
    lines.append(f"fix: {repair_command(record_dir, manifest)} rewrites only these shards "
                 f"(or convert the folder again)")
    return "\n".join(lines)


def repair_summary(record_dir: str, problems: list[ShardProblem]) -> str:
    if not problems:
        return f"{record_dir}: every shard verifies; nothing to repair"
    return "\n".join([f"{record_dir}: rewrote {len(problems)} shard(s), each equal to its manifest entry again:"]
                     + [f"  {p.file} (was: {p.problem})" for p in problems])


_CHECKED: dict = {}


def require_intact(record_dir: str) -> None:
    """The fast check, once per folder and manifest version in a process; DamagedRecordsError if it fails."""
    path = os.path.join(record_dir, MANIFEST)
    stat = os.stat(path) if os.path.isfile(path) else None
    key = (os.path.abspath(record_dir), stat and (stat.st_mtime_ns, stat.st_size))
    if key in _CHECKED:
        return
    manifest, problems = verify_folder(record_dir)
    if problems:
        raise DamagedRecordsError(describe(record_dir, manifest, problems))
    if not is_verifiable(manifest):
        print(f"note: {path} predates shard sizes and checksums; only record counts can be verified "
              f"(convert again to add them)", file=sys.stderr)
    _CHECKED[key] = True


def explain_read_error(error: Exception, record_dirs: list[str]) -> DamagedRecordsError:
    """A read error raised mid-run (a disk going bad), turned into a message naming the damaged shard: the
    folders are checked in depth to find it."""
    found = []
    for folder in record_dirs:
        try:
            manifest, problems = verify_folder(folder, deep=True)
        except ValueError as err:
            found.append(str(err))
            continue
        if problems:
            found.append(describe(folder, manifest, problems))
    detail = tf_read_problem(str(getattr(error, "message", error)))
    if not found:
        return DamagedRecordsError(f"reading records failed ({detail}), but {', '.join(record_dirs)} verify "
                                   f"now: a transient read error? Run it again")
    return DamagedRecordsError(f"reading records failed ({detail}):\n" + "\n".join(found))


class naming_damaged_shards:
    """Context manager: TensorFlow's DataLossError inside (a record that stopped reading mid-run) leaves as a
    DamagedRecordsError naming the folder and shard."""

    def __init__(self, record_dirs):
        self.record_dirs = [d for d in record_dirs if d]

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or type(error).__name__ != "DataLossError":
            return False
        raise explain_read_error(error, self.record_dirs) from None
