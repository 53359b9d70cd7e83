"""Raw dataset -> square face crops -> numbered TFRecord shards + manifest.json.

Work is split by sample index: shard k holds the converted samples k*shard_size .. (k+1)*shard_size - 1 of the
sorted item list, so the output is byte-identical whatever the worker count. Each shard is written under a
temporary name and renamed when complete; `conversion.partial.json` records finished shards, so an interrupted
run resumes with the shards it had not finished.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from facekit.draw import draw_points, tile
from facekit.files import read_json, write_json
from facekit.geometry import (
    crop_and_resize,
    crop_norm_to_points,
    landmark_box_xyxy,
    points_to_crop_norm,
    square_crop_box,
)
from facekit.landmarks import FIVE, LandmarkScheme, five_points
from facekit.pose import estimate_pose
from facekit.records import schema, shards
from facekit.records.datasets import DatasetFormat, ReaderOptions, Sample, SampleError, get_format
from facekit.records.shards import PREVIEW, ConversionError, convert_item, init_worker, item_name
from facekit.records.verify import verify_folder

PARTIAL_STATE = "conversion.partial.json"
RUNNERS = ("local", "beam")
BOX_SOURCES = ("landmarks", "annotation")
POINT_SETS = ("all", "five")
OUTSIDE_POLICIES = ("skip", "keep")


@dataclass(frozen=True)
class ConvertSettings:
    """Everything that determines the output bytes (saved in the manifest; a resume must match it)."""

    format: str
    image_size: int = 112
    margin: float = 0.2  # added on each side, as a fraction of the face box side
    box_source: str = "landmarks"
    shard_size: int = 1000
    jpeg_quality: int = 95
    reduced_decode: bool = True  # let libjpeg decode at 1/2, 1/4, 1/8 when the crop shrinks that much anyway
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    # faces with landmarks outside the photo: skip them, or keep them (the crop pads with zeros, the points keep
    # their crop coordinates); None: keep for formats whose points may leave the image (300W-LP, AFLW2000-3D)
    outside: str | None = None
    # all: the format's own scheme; five: its five points (eye centres, nose tip, mouth corners; facekit.landmarks
    # five_points), so five-point models train on 68-point sources, cropped as the full markup frames the face
    points: str = "all"

    def __post_init__(self):
        fmt = get_format(self.format)
        if self.outside is None:
            object.__setattr__(self, "outside", "keep" if fmt.points_leave_image else "skip")
        if self.outside not in OUTSIDE_POLICIES:
            raise ValueError(f"outside must be one of {OUTSIDE_POLICIES}, got {self.outside!r}")
        if self.image_size < 8:
            raise ValueError(f"image size must be at least 8, got {self.image_size}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}")
        if self.box_source not in BOX_SOURCES:
            raise ValueError(f"box source {self.box_source!r} is not one of {BOX_SOURCES}")
        if self.shard_size < 1:
            raise ValueError(f"shard size must be positive, got {self.shard_size}")
        if self.points not in POINT_SETS:
            raise ValueError(f"points must be one of {POINT_SETS}, got {self.points!r}")

    @property
    def scheme(self) -> LandmarkScheme:
        """The scheme of the records written: the format's, or FIVE with points='five'."""
        return FIVE if self.points == "five" else get_format(self.format).scheme

    # The job interface convert_dataset drives (facekit.detection.convert.DetectionSettings has the same).
    def list_items(self, input_dir: str) -> list:
        return get_format(self.format).list_items(input_dir, self.reader)

    def prepare(self, input_dir: str, item) -> schema.CropRecord:
        return prepare_record(get_format(self.format), input_dir, item, self)

    encode = staticmethod(schema.encode_example)

    def write_preview(self, path: str, converted: list) -> None:
        write_preview(path, converted)

    def shard_fields(self, converted: list) -> dict:
        """converted [(item name, CropRecord)] of one shard -> how many kept points outside their photo."""
        return {"points_outside_image": sum(points_outside_image(record) for _, record in converted)}

    def manifest_fields(self, shards: list[dict]) -> dict:
        return {"task": "landmarks", "format": self.format, "scheme": self.scheme.name,
                "num_points": self.scheme.num_points, "image_size": self.image_size, "margin": self.margin,
                "outside": self.outside,
                "faces_with_points_outside_image": sum(s.get("points_outside_image", 0) for s in shards)}


def jpeg_size_hw(data: bytes) -> tuple[int, int] | None:
    """Height and width from a JPEG's start-of-frame marker, or None if there is none."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + length
    return None


def read_image(path: str, reduction: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image as BGR, JPEGs at 1/reduction size. Returns (image, full-size (H, W)).

    EXIF orientation is ignored: annotations refer to the stored pixel grid. SampleError for a missing, empty,
    truncated or undecodable file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SampleError(f"{path}: cannot read image ({err.strerror})") from None
    if not data:
        raise SampleError(f"{path}: empty image file")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    size_hw = None
    if data[:2] == b"\xff\xd8":
        if not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            raise SampleError(f"{path}: truncated JPEG (no end-of-image marker)")
        size_hw = jpeg_size_hw(data)
        if reduction > 1:
            flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                     8: cv2.IMREAD_REDUCED_COLOR_8}[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
    elif reduction != 1:
        raise ValueError("reduced decoding is for JPEG files only")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise SampleError(f"{path}: cannot decode image")
    return image, size_hw or image.shape[:2]


def _check_points(sample: Sample, num_points: int) -> None:
    pts = sample.points_px
    if pts.shape != (num_points, 2):
        raise SampleError(f"{sample.image_path}: {len(pts)} landmarks, the scheme has {num_points}")
    if not np.isfinite(pts).all():
        raise SampleError(f"{sample.image_path}: landmarks contain NaN or infinite values")


def outside_image(points_px: np.ndarray, size_hw) -> np.ndarray:
    """(K,) bool: points (K, 2) outside the continuous image [0, W] x [0, H]."""
    h, w = size_hw
    return (points_px[:, 0] < 0) | (points_px[:, 0] > w) | (points_px[:, 1] < 0) | (points_px[:, 1] > h)


def points_outside_image(record: schema.CropRecord) -> bool:
    """Whether a converted face kept landmarks that lie outside its source photo."""
    return bool(outside_image(crop_norm_to_points(record.points_norm, record.box_xyxy), record.source_hw).any())


def _check_inside(sample: Sample, size_hw: tuple[int, int]) -> None:
    pts = sample.points_px
    outside = outside_image(pts, size_hw)
    if outside.any():
        i = int(np.argmax(outside))
        raise SampleError(f"{sample.image_path}: {int(outside.sum())} landmarks outside the {size_hw[1]}x"
                          f"{size_hw[0]} image (point {i} at ({pts[i, 0]:.1f}, {pts[i, 1]:.1f})); "
                          "--outside keep converts such faces")


def _reduction(path: str, side: float, size: int, enabled: bool) -> int:
    """Largest JPEG DCT scale (1, 2, 4, 8) that still leaves the crop at least `size` pixels wide."""
    if not enabled or os.path.splitext(path)[1].lower() not in (".jpg", ".jpeg"):
        return 1
    r = 1
    while r < 8 and side / (2 * r) >= size:
        r *= 2
    return r


def prepare_record(fmt: DatasetFormat, input_dir: str, item, settings: ConvertSettings) -> schema.CropRecord:
    """One raw item -> a validated, cropped, encoded CropRecord. SampleError when the sample is unusable."""
    sample = fmt.load_sample(input_dir, item, settings.reader)
    _check_points(sample, fmt.scheme.num_points)
    if settings.box_source == "annotation":
        if sample.box_xyxy is None:
            raise SampleError(f"{sample.image_path}: format {fmt.name} has no face box; use --box-source landmarks")
        face_box, scale = sample.box_xyxy, 1 + 2 * settings.margin
    else:
        face_box = landmark_box_xyxy(sample.points_px)
        scale = fmt.scheme.face_scale * (1 + 2 * settings.margin)
    side = max(face_box[2] - face_box[0], face_box[3] - face_box[1]) * scale
    reduction = _reduction(sample.image_path, side, settings.image_size, settings.reduced_decode)
    image, size_hw = read_image(sample.image_path, reduction)
    if settings.outside == "skip":
        _check_inside(sample, size_hw)
    box = square_crop_box(face_box, scale, align=reduction)
    crop = crop_and_resize(image, box / reduction, settings.image_size)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
    if not ok:
        raise SampleError(f"{sample.image_path}: JPEG encoding of the crop failed")
    if sample.pose_rad is None:
        pose, estimated = estimate_pose(sample.points_px, size_hw, fmt.scheme), True
    else:
        pose, estimated = sample.pose_rad, False
    if not np.isfinite(pose).all():
        raise SampleError(f"{sample.image_path}: pose is not finite ({pose})")
    points = five_points(sample.points_px, fmt.scheme) if settings.points == "five" else sample.points_px
    return schema.CropRecord(
        source_id=sample.source_id, jpeg=jpeg.tobytes(), source_hw=tuple(int(v) for v in size_hw),
        points_norm=points_to_crop_norm(points, box), box_xyxy=box, pose_rad=np.asarray(pose),
        pose_estimated=estimated,
        attributes=sample.attributes or (-1,) * schema.NUM_ATTRIBUTES)


def _stem(name: str) -> str:
    return os.path.splitext(name.partition("#")[0])[0].replace("\\", "/")


def filter_by_split_list(items: list, split_list: str) -> list:
    """Keep the items whose image (path relative to --input, extension optional) is listed in the file."""
    with open(split_list, encoding="utf-8") as f:
        wanted = {_stem(line.strip()) for line in f if line.strip() and not line.startswith("#")}
    kept = [i for i in items if _stem(item_name(i)) in wanted]
    if not kept:
        raise ValueError(f"{split_list}: none of its {len(wanted)} entries matches a sample of the input")
    return kept


def _prepare_output(output_dir: str, fingerprint: dict, overwrite: bool) -> dict | None:
    """Create the folder; return the finished-shards state to resume from, or a complete manifest to reuse."""
    os.makedirs(output_dir, exist_ok=True)
    manifest_path = os.path.join(output_dir, schema.MANIFEST)
    state_path = os.path.join(output_dir, PARTIAL_STATE)
    previous = None
    for path in (manifest_path, state_path):
        if os.path.exists(path) and not overwrite:
            previous = read_json(path)
            break
    if previous is not None:
        if previous.get("fingerprint") != fingerprint:
            raise ConversionError(f"{output_dir} holds a conversion with other settings or input; "
                                  "choose another --output or pass --overwrite")
        return previous
    if schema.stray_shards(output_dir) and not overwrite:
        raise ConversionError(f"{output_dir} has .tfrecord files but no manifest; pass --overwrite to replace them")
    _remove_outputs(output_dir)
    return None


def _remove_outputs(output_dir: str) -> None:
    """Delete every file a conversion writes: shards (finished or temporary), manifest, state, preview."""
    names = (schema.MANIFEST, PARTIAL_STATE, PREVIEW)
    for path in schema.stray_shards(output_dir) + [os.path.join(output_dir, n) for n in names]:
        if os.path.exists(path):
            os.remove(path)


def convert_dataset(input_dir: str, output_dir: str, settings, name: str | None = None,
                    workers: int = 1, split_list: str | None = None, overwrite: bool = False,
                    progress: bool = True, runner: str = "local", beam_args: tuple[str, ...] = ()) -> dict:
    """Convert a raw dataset folder into `output_dir`; returns the manifest (also written as manifest.json).

    settings: ConvertSettings (face crops for landmark models), facekit.detection.convert.DetectionSettings
    (whole images with face boxes) or facekit.detection.mtcnn.samples.SampleSettings (MTCNN training windows;
    input_dir None, the settings name their record folders). Any object with the same job interface works: this
    engine never imports the wings. runner "beam" runs the per-sample work and the shard writing as an Apache Beam
    pipeline (facekit.records.beam_runner; beam_args are its pipeline options) instead of `workers` local
    processes: same records, manifest and preview. Raises ValueError for bad arguments or input,
    ConversionError when no sample could be converted.
    """
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    beam_runner = import_beam_runner() if runner == "beam" else None  # before anything is written
    items, name, num_shards, fingerprint = _plan(input_dir, settings, name, split_list)
    previous = _prepare_output(output_dir, fingerprint, overwrite)
    if previous is not None and "shards" in previous:
        return previous  # an identical, complete conversion is already there
    done = {int(k): v for k, v in (previous or {}).get("done", {}).items()}
    todo_items = _shard_items([k for k in range(num_shards) if k not in done], len(items), settings.shard_size)
    if beam_runner:
        done.update(beam_runner.convert_shards_on_beam(todo_items, items, input_dir, output_dir, settings, name,
                                                       num_shards, beam_args))
        write_json(os.path.join(output_dir, PARTIAL_STATE), {"fingerprint": fingerprint, "done": done})
        return _finish(output_dir, fingerprint, settings, name, num_shards, done)
    with tqdm(total=len(items), initial=len(items) - len(todo_items), unit="img", disable=not progress,
              desc=f"convert {settings.format}") as bar:
        for k, result in _shard_results(todo_items, items, input_dir, settings, workers, bar):
            done[k] = shards.write_shard_and_preview(output_dir, name, k, num_shards, result, settings)
            write_json(os.path.join(output_dir, PARTIAL_STATE), {"fingerprint": fingerprint, "done": done})
    return _finish(output_dir, fingerprint, settings, name, num_shards, done)


def import_beam_runner():
    """facekit.records.beam_runner, or a ValueError that says how to install Beam."""
    try:
        from facekit.records import beam_runner
    except ImportError as err:
        raise ValueError(f"--runner beam needs Apache Beam ({err}), an optional extra: "
                         "pip install -r requirements-beam.txt (or pip install -e .[beam]) in its own environment") \
            from None
    return beam_runner


def _plan(input_dir, settings, name, split_list) -> tuple[list, str, int, dict]:
    """(items, shard name prefix, number of shards, fingerprint) of a conversion."""
    if input_dir is not None and not os.path.isdir(input_dir):
        raise ValueError(f"{input_dir}: input folder does not exist")
    items = settings.list_items(input_dir)
    if split_list:
        items = filter_by_split_list(items, split_list)
    if not items:
        raise ValueError(f"{input_dir}: no {settings.format} samples found")
    name = name or settings.format
    fingerprint = {"input": input_dir and os.path.abspath(input_dir), "name": name, "num_items": len(items),
                   "split_list": split_list, "settings": asdict(settings), "schema_version": schema.SCHEMA_VERSION}
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from the manifest (tuples -> lists)
    return items, name, math.ceil(len(items) / settings.shard_size), fingerprint


def _shard_items(shards: list[int], num_items: int, shard_size: int) -> list[tuple[int, int]]:
    """(shard index, item index) of every item of the given shards."""
    return [(k, i) for k in shards for i in range(k * shard_size, min((k + 1) * shard_size, num_items))]


def repair_dataset(input_dir: str, output_dir: str, settings, name: str | None = None, workers: int = 1,
                   split_list: str | None = None, progress: bool = True) -> list:
    """Rewrite only the shards of a finished conversion that fail the deep check (facekit.records.verify), from the
    same input and settings; returns the problems found (empty: nothing to do). Conversion is deterministic,
    so each rewritten shard must equal its manifest entry (count, SHA-256) or it is not put in place."""
    items, name, _, fingerprint = _plan(input_dir, settings, name, split_list)
    if not os.path.exists(os.path.join(output_dir, schema.MANIFEST)):
        unfinished = os.path.exists(os.path.join(output_dir, PARTIAL_STATE))
        raise ConversionError(f"{output_dir}: " + ("unfinished conversion: run it again without --repair to "
                                                   "resume it" if unfinished else "no manifest, nothing to "
                                                   "repair: convert the folder (with --overwrite)"))
    manifest, problems = verify_folder(output_dir, deep=True)
    if manifest.get("fingerprint") != fingerprint:
        raise ConversionError(f"{output_dir} was converted from other input or settings: --repair needs the "
                              f"arguments of the original conversion (its input: {manifest['fingerprint']['input']})")
    entries = {s["file"]: k for k, s in enumerate(manifest["shards"])}
    todo_items = _shard_items(sorted(entries[p.file] for p in problems), len(items), settings.shard_size)
    with tqdm(total=len(todo_items), unit="img", disable=not progress, desc="repair") as bar:
        for k, result in _shard_results(todo_items, items, input_dir, settings, workers, bar):
            entry = manifest["shards"][k]
            shards.write_shard(output_dir, entry["file"], result, settings, expected=entry)
    return problems


def _convert_block(block: list) -> list:
    return [convert_item(item) for item in block]


def _ordered_results(tasks: list, input_dir: str, settings: ConvertSettings, workers: int):
    """Convert tasks, yielding results in task order.

    With N workers, N-1 spawned processes take blocks of 16 tasks (up to 2 blocks each in flight) and the main
    process converts the next unassigned block itself whenever the next result in order is not ready, so N
    processes share N cores, the main one works while the others start, and the load balances itself.
    """
    init_worker(input_dir, settings)
    if workers <= 1:
        yield from map(convert_item, tasks)
        return
    blocks = [tasks[i:i + 16] for i in range(0, len(tasks), 16)]
    pool = multiprocessing.get_context("spawn").Pool(workers - 1, init_worker, (input_dir, settings))
    pending: dict[int, object] = {}  # block index -> AsyncResult (pool) or finished list (main process)
    assigned = 0
    try:
        for head in range(len(blocks)):
            while True:
                in_flight = sum(1 for r in pending.values() if not isinstance(r, list))
                while in_flight < 2 * (workers - 1) and assigned < len(blocks):
                    pending[assigned] = pool.apply_async(_convert_block, (blocks[assigned],))
                    assigned, in_flight = assigned + 1, in_flight + 1
                result = pending[head]
                if isinstance(result, list) or result.ready() or assigned == len(blocks) or len(pending) > 64:
                    break
                pending[assigned] = _convert_block(blocks[assigned])  # work instead of waiting
                assigned += 1
            result = pending.pop(head)
            yield from (result if isinstance(result, list) else result.get())
    finally:
        pool.terminate()


def _shard_results(todo_items, items, input_dir, settings, workers, bar):
    """Yield (shard index, [(item name, record or reason), ...]) per remaining shard, in order."""
    results = _ordered_results([items[i] for _, i in todo_items], input_dir, settings, workers)
    current, batch = None, []
    for (k, i), result in zip(todo_items, results):
        if k != current and batch:
            yield current, batch
            batch = []
        current = k
        batch.append((item_name(items[i]), result))
        bar.update(1)
    if batch:
        yield current, batch


def write_preview(path: str, results: list, count: int = 32) -> None:
    """A grid of the first converted crops with their landmarks, for a person to check the conversion."""
    crops = []
    for rec, _ in results[:count]:
        crop = cv2.imdecode(np.frombuffer(rec.jpeg, np.uint8), cv2.IMREAD_COLOR)
        size = crop.shape[0]
        crops.append(draw_points(cv2.resize(crop, (2 * size, 2 * size)), rec.points_norm * 2 * size))
    if crops:
        cv2.imwrite(path, tile(crops), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _finish(output_dir, fingerprint, settings, name, num_shards, done) -> dict:
    shards = [done[k] for k in range(num_shards)]
    skipped = [s for shard in shards for s in shard["skipped"]]
    num_records = sum(s["num_records"] for s in shards)
    if num_records == 0:
        _remove_outputs(output_dir)
        reasons = "\n  ".join(s["reason"] for s in skipped[:10])
        raise ConversionError(f"nothing converted: all {len(skipped)} samples were skipped, e.g.\n  {reasons}")
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "name": name,
        **settings.manifest_fields(shards),
        "num_records": num_records,
        "num_skipped": len(skipped),
        "skipped_by_reason": reason_counts(skipped),
        "skipped": skipped,
        "shards": [{k: s[k] for k in ("file", "num_records", "bytes", "sha256")} for s in shards],
        "conventions": {"points": "landmarks/points normalised to crop/box_xyxy; boxes in continuous source "
                                  "pixels where pixel i covers [i, i+1)",
                        "pose": "pitch, yaw, roll radians, 300W-LP signs (facekit.pose)"},
        "fingerprint": fingerprint,
    }
    write_json(os.path.join(output_dir, schema.MANIFEST), manifest)
    os.remove(os.path.join(output_dir, PARTIAL_STATE))
    return manifest


def reason_counts(skipped: list[dict]) -> dict:
    """Skip reasons grouped by their problem (the text after the file name)."""
    return dict(Counter(s["reason"].split(": ", 1)[-1].split(" (")[0] for s in skipped).most_common())
