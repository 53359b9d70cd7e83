"""MTCNN training samples: windows cut from detection records, labelled by IoU, with the cascade's targets.

A window is a square crop proposed around (or away from) a face. Its kind follows its best IoU with the image's
valid faces: >= 0.65 positive, >= 0.4 part, < 0.3 negative, and in between unused (ambiguous). Windows come from
random squares (negatives), shifted squares near each face (near negatives), jittered squares about each face
(positives and parts) and, for R-Net and O-Net, the boxes the previous trained stages propose (hard examples).
Landmark samples are windows with IoU >= 0.65 around faces with all five points inside. Targets are the exact
inverse of the cascade's decoding (facekit.infer.mtcnn.training_targets), so trained networks run in it as they
are. Training mixes the kinds 3:1:1:2 (negative:positive:part:landmark), as in the MTCNN paper.

`SampleSettings` is a job for facekit.records.convert.convert_dataset (atomic resumable shards, workers, manifest): one
item is one image of the detection records; every random choice is seeded by the settings' seed and the item's
name, so the output is byte-identical for any worker count.
"""
from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from facekit.boxes import box_iou
from facekit.draw import draw_points, tile
from facekit.infer.mtcnn import CROP_SIZES, PNET_WINDOW, crop_region, crop_windows, normalize, training_targets
from facekit.landmarks import FIVE
from facekit.records import schema
from facekit.records.datasets import SampleError
from facekit.records.schema import SampleKind

POSITIVE_IOU, PART_IOU, NEGATIVE_IOU = 0.65, 0.4, 0.3
MIX = {"negative": 3, "positive": 1, "part": 1, "landmark": 2}
STAGE_SIZES = {"pnet": PNET_WINDOW, **CROP_SIZES}
MINING_THRESHOLDS = (0.3, 0.1, 0.7)  # face scores a proposal needs at P-Net and R-Net when mining, as the reference




KIND_NAMES = tuple(kind.name.lower() for kind in SampleKind)


def label_windows(windows: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """windows (N, 4), faces (F, 4) continuous xyxy -> (kinds (N,) int with -1 for ambiguous windows, index of the
    best-overlapping face (N,), 0 when there is no face)."""
    if not len(faces):
        return np.full(len(windows), int(SampleKind.NEGATIVE)), np.zeros(len(windows), int)
    overlap = box_iou(windows, faces)
    best = overlap.argmax(axis=1)
    best_iou = overlap[np.arange(len(windows)), best]
    kinds = np.full(len(windows), -1)
    kinds[best_iou < NEGATIVE_IOU] = SampleKind.NEGATIVE
    kinds[(best_iou >= PART_IOU) & (best_iou < POSITIVE_IOU)] = SampleKind.PART
    kinds[best_iou >= POSITIVE_IOU] = SampleKind.POSITIVE
    return kinds, best


@dataclass(frozen=True)
class SampleSettings:
    """Everything that determines the output bytes (saved in the manifest; a resume must match it).

    data_dirs: detection record folders; previous: for rnet the P-Net run, for onet the P-Net and R-Net runs.
    Counts are per image (negatives, mined negatives) or per face (the rest); faces whose longer side is under
    min_face give no positive or part windows, under min_landmark_face no landmark windows."""

    stage: str
    data_dirs: tuple[str, ...]
    previous: tuple[str, ...] = ()
    negatives_per_image: int = 12
    near_negatives_per_face: int = 3
    candidates_per_face: int = 10
    landmark_candidates_per_face: int = 4
    mined_negatives_per_image: int = 24
    min_face: float = 20.0
    min_landmark_face: float = 40.0
    mirror: float = 0.5
    seed: int = 0
    shard_size: int = 250

    def __post_init__(self):
        if self.stage not in STAGE_SIZES:
            raise ValueError(f"stage must be one of {list(STAGE_SIZES)}, got {self.stage!r}")
        needed = {"pnet": 0, "rnet": 1, "onet": 2}[self.stage]
        if len(self.previous) != needed:
            raise ValueError(f"stage {self.stage} mines hard examples with {needed} previous run(s) "
                             f"({['P-Net', 'R-Net'][:needed] or 'none'}), got {len(self.previous)}")
        if not self.data_dirs:
            raise ValueError("no detection record folders given")

    @property
    def format(self) -> str:
        return f"mtcnn_{self.stage}"

    @property
    def size(self) -> int:
        return STAGE_SIZES[self.stage]

    # The job interface convert_dataset drives.
    def list_items(self, input_dir: None) -> list:
        return list_images(self.data_dirs)

    def prepare(self, input_dir: None, item) -> list[schema.MtcnnSample]:
        return image_samples(item, self)

    @staticmethod
    def encode(samples: list[schema.MtcnnSample]) -> list[bytes]:
        return [schema.encode_mtcnn_sample(sample) for sample in samples]

    def write_preview(self, path: str, converted: list) -> None:
        write_sample_preview(path, [s for samples, _ in converted for s in samples], self.stage)

    def shard_fields(self, converted: list) -> dict:
        kinds, sources = Counter(), Counter()
        for _, samples in converted:
            for sample in samples:
                kinds[KIND_NAMES[sample.kind]] += 1
                sources[f"{sample.source.split('/', 1)[0]}/{KIND_NAMES[sample.kind]}"] += 1
        return {"kinds": dict(kinds), "sources": dict(sources)}

    def manifest_fields(self, shards: list[dict]) -> dict:
        kinds, sources = Counter(), Counter()
        for shard in shards:
            kinds.update(shard.get("kinds", {}))
            sources.update(shard.get("sources", {}))
        return {"task": "mtcnn_samples", "stage": self.stage, "image_size": self.size,
                "num_by_kind": {name: kinds.get(name, 0) for name in KIND_NAMES},
                "num_by_source": dict(sorted(sources.items())), "mix": MIX}


def list_images(data_dirs) -> list[tuple]:
    """Every image of the detection record folders as (name, encoded bytes, boxes (F, 4), landmarks (F, 5, 2),
    invalid (F,) bool), named `folder name/source id`, in folder then file order."""
    from facekit.detection.data import read_scenes

    items = []
    for record_dir in data_dirs:
        folder = os.path.basename(os.path.normpath(record_dir))
        for scene in read_scenes(record_dir, decode=False).as_numpy_iterator():
            items.append((f"{folder}/{scene['source_id'].decode()}", scene["image/encoded"], scene["boxes_xyxy"],
                          scene["landmarks_px"], scene["flags"][:, 3] == 1))
    return items


# ---------------------------------------------------------------- windows (continuous squares, integer corners)

def _squares(x, y, side) -> np.ndarray:
    x, y, side = (np.asarray(v, np.float64).ravel() for v in (x, y, side))
    return np.stack([x, y, x + side, y + side], axis=1).reshape(-1, 4)


def random_squares(rng, height: int, width: int, count: int) -> np.ndarray:
    """count squares inside the image, side in [12, short side / 2): mostly background."""
    top = min(height, width) // 2
    if top <= PNET_WINDOW:
        return np.zeros((0, 4))
    side = rng.integers(PNET_WINDOW, top, count)
    return _squares(rng.integers(0, width - side + 1), rng.integers(0, height - side + 1), side)


def near_squares(rng, face: np.ndarray, height: int, width: int, count: int) -> np.ndarray:
    """Squares shifted off a face by up to their own side (negatives that touch it), inside the image."""
    top = min(height, width) // 2
    if top <= PNET_WINDOW:
        return np.zeros((0, 4))
    side = rng.integers(PNET_WINDOW, top, count)
    x = np.floor(face[0] + rng.uniform(-1, 1, count) * np.maximum(side, face[2] - face[0]))
    y = np.floor(face[1] + rng.uniform(-1, 1, count) * np.maximum(side, face[3] - face[1]))
    return _squares(np.clip(x, 0, width - side), np.clip(y, 0, height - side), side)


def jittered_squares(rng, face: np.ndarray, count: int) -> np.ndarray:
    """Squares about a face: side in [0.8 short side, 1.25 long side], centre moved up to 0.2 of the face size."""
    w, h = face[2] - face[0], face[3] - face[1]
    side = np.floor(rng.uniform(0.8 * min(w, h), 1.25 * max(w, h), count))
    cx = (face[0] + face[2]) / 2 + rng.uniform(-0.2, 0.2, count) * w
    cy = (face[1] + face[3]) / 2 + rng.uniform(-0.2, 0.2, count) * h
    return _squares(np.round(cx - side / 2), np.round(cy - side / 2), side)


def inside(squares: np.ndarray, height: int, width: int) -> np.ndarray:
    return (squares[:, 0] >= 0) & (squares[:, 1] >= 0) & (squares[:, 2] <= width) & (squares[:, 3] <= height)


# ---------------------------------------------------------------- one image -> samples (runs in the workers)

def mirrored(image, boxes, landmarks):
    """A horizontal flip of an image with its faces: boxes swap x1/x2, points move and swap sides."""
    width = image.shape[1]
    boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    landmarks = landmarks[:, FIVE.flip_permutation] * np.array([-1, 1]) + np.array([width, 0])
    return image[:, ::-1], boxes, landmarks


def crop_samples(stage: str, image_rgb: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """Windows (N, 4) -> (N, S, S, 3) uint8 RGB, cut as the cascade sees them: a P-Net window is a region of the
    image shrunk to 12 px (area interpolation, like the pyramid); R/O-Net boxes go through crop_windows."""
    size = STAGE_SIZES[stage]
    if stage == "pnet":
        out = np.empty((len(crops), size, size, 3), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(crops.astype(int)):
            out[k] = cv2.resize(image_rgb[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)
        return out
    if not len(crops):
        return np.zeros((0, size, size, 3), np.uint8)
    return np.uint8(np.clip(np.round(crop_windows(normalize(image_rgb), crops, size) * 128 + 127.5), 0, 255))


_CASCADES: dict = {}


def mining_cascade(previous: tuple[str, ...]):
    """The previous trained stages as a cascade (loaded once per process), with the reference's low mining
    thresholds so that near misses become hard examples."""
    if previous not in _CASCADES:
        from facekit.detection.mtcnn.networks import keras_network, load_run_networks
        from facekit.infer.mtcnn import MTCNN

        networks = [keras_network(n) for n in load_run_networks(list(previous), count=len(previous)).values()]
        _CASCADES[previous] = MTCNN(*networks, *[None] * (3 - len(networks)), thresholds=MINING_THRESHOLDS)
    return _CASCADES[previous]


def mined_boxes(previous: tuple[str, ...], image_rgb: np.ndarray) -> np.ndarray:
    """Boxes (M, 4) (pixel-index convention) the previous stages pass on for this image."""
    cascade = mining_cascade(previous)
    normalised = [normalize(image_rgb)]
    found = cascade.propose(normalised)
    if len(previous) == 2:
        found = cascade.refine(normalised, found)
    boxes = found[0][:, :4]
    return np.round(boxes[(boxes[:, 2] - boxes[:, 0]) >= PNET_WINDOW - 1])


def image_samples(item, settings: SampleSettings) -> list[schema.MtcnnSample]:
    """One image of the detection records -> its training windows (every kind), seeded by the item's name."""
    name, encoded, boxes, landmarks, invalid = item
    rng = np.random.default_rng([settings.seed, zlib.crc32(name.encode("utf-8"))])
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError(f"{name}: cannot decode image")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    boxes, landmarks = np.asarray(boxes, np.float64), np.asarray(landmarks, np.float64)
    if rng.random() < settings.mirror:
        image, boxes, landmarks = mirrored(image, boxes, landmarks)
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    faces, points, ignored = boxes[~invalid], landmarks[~invalid], boxes[invalid]
    long_side = np.max(faces[:, 2:] - faces[:, :2], axis=1) if len(faces) else np.zeros(0)

    negatives = [random_squares(rng, height, width, settings.negatives_per_image)]
    candidates, marked = [], []
    for k, face in enumerate(faces):
        negatives.append(near_squares(rng, face, height, width, settings.near_negatives_per_face))
        if long_side[k] >= settings.min_face:
            candidates.append(jittered_squares(rng, face, settings.candidates_per_face))
        if long_side[k] >= settings.min_landmark_face and np.isfinite(points[k]).all():
            marked.append((k, jittered_squares(rng, face, settings.landmark_candidates_per_face)))
    squares = np.concatenate(negatives + candidates)
    squares = squares[inside(squares, height, width)]
    crops = squares if settings.stage == "pnet" else squares - np.array([0, 0, 1, 1])  # continuous -> index box
    if settings.previous:
        mined = mined_boxes(settings.previous, image)
        kinds, _ = label_windows(crop_region(settings.stage, mined), faces)
        mined_negative = np.nonzero(kinds == SampleKind.NEGATIVE)[0]
        drop = rng.permutation(mined_negative)[settings.mined_negatives_per_image:]
        crops = np.concatenate([crops, np.delete(mined, drop, axis=0)])

    regions = crop_region(settings.stage, crops)
    kinds, best = label_windows(regions, faces)
    if len(ignored):  # no negatives on faces marked invalid (their boxes are not trustworthy either way)
        kinds[(kinds == SampleKind.NEGATIVE) & (box_iou(regions, ignored).max(axis=1) >= NEGATIVE_IOU)] = -1
    keep = kinds >= 0
    crops, kinds, best = crops[keep], kinds[keep], best[keep]
    no_points = np.full((len(crops), 5, 2), np.nan)
    box_targets, _ = training_targets(settings.stage, crops, faces[best] if len(faces) else np.zeros((len(crops), 4)),
                                      no_points)
    box_targets[kinds == SampleKind.NEGATIVE] = 0
    mark_targets = np.zeros((len(crops), 10))

    for k, squares_k in marked:  # landmark windows: around face k, overlapping it >= 0.65, every point inside
        squares_k = squares_k[inside(squares_k, height, width)]
        crops_k = squares_k if settings.stage == "pnet" else squares_k - np.array([0, 0, 1, 1])
        regions_k = crop_region(settings.stage, crops_k)
        inside_points = np.all((points[k][None, :, 0] > regions_k[:, None, 0]) &
                               (points[k][None, :, 0] < regions_k[:, None, 2]) &
                               (points[k][None, :, 1] > regions_k[:, None, 1]) &
                               (points[k][None, :, 1] < regions_k[:, None, 3]), axis=1)
        good = (box_iou(regions_k, faces[k:k + 1])[:, 0] >= POSITIVE_IOU) & inside_points
        crops_k = crops_k[good]
        box_k, marks_k = training_targets(settings.stage, crops_k, np.repeat(faces[k:k + 1], len(crops_k), 0),
                                          np.repeat(points[k:k + 1], len(crops_k), 0))
        crops = np.concatenate([crops, crops_k])
        kinds = np.concatenate([kinds, np.full(len(crops_k), int(SampleKind.LANDMARK))])
        box_targets, mark_targets = np.concatenate([box_targets, box_k]), np.concatenate([mark_targets, marks_k])

    windows = crop_samples(settings.stage, image, crops)
    return [schema.MtcnnSample(name, int(kind), window, box.astype(np.float32), marks.astype(np.float32))
            for kind, window, box, marks in zip(kinds, windows, box_targets, mark_targets)]


# ---------------------------------------------------------------- preview

def face_in_window(stage: str, box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a sample's targets put its face and points inside its S x S window (for drawing): box (4,),
    points (5, 2) in window pixels."""
    size = STAGE_SIZES[stage]
    marks = np.stack([landmarks[:5], landmarks[5:]], axis=1)
    if stage == "pnet":  # window from 1 to 12 px regressed with side 11
        return 1 + box * (PNET_WINDOW - 1) + np.array([0, 0, PNET_WINDOW - 1, PNET_WINDOW - 1]), 1 + marks * 11
    return box * size + np.array([0, 0, size - 1, size - 1]), marks * size - 1


def write_sample_preview(path: str, samples: list[schema.MtcnnSample], stage: str, per_kind: int = 8,
                         scale: int = 0) -> None:
    """A grid with one row per kind (negative, positive, part, landmark): the first windows of each, enlarged,
    with the face box their targets decode to (green) and landmark points (red)."""
    size = STAGE_SIZES[stage]
    scale = scale or max(1, 96 // size)
    rows = []
    for kind in SampleKind:
        chosen = [s for s in samples if s.kind == kind][:per_kind]
        tiles = []
        for sample in chosen:
            window = cv2.resize(cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), (size * scale, size * scale),
                                interpolation=cv2.INTER_NEAREST)
            if kind != SampleKind.NEGATIVE:
                face, marks = face_in_window(stage, sample.box, sample.landmarks)
                x1, y1, x2, y2 = (int(round(v * scale)) for v in face)
                cv2.rectangle(window, (x1, y1), (x2, y2), (0, 255, 0), 1, cv2.LINE_AA)
                if kind == SampleKind.LANDMARK:
                    window = draw_points(window, marks * scale, (0, 0, 255), radius=2)
            tiles.append(window)
        tiles += [np.zeros((size * scale, size * scale, 3), np.uint8)] * (per_kind - len(tiles))
        cv2.putText(tiles[0], KIND_NAMES[kind], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        rows.append(tile(tiles, columns=per_kind))
    cv2.imwrite(path, np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 90])
