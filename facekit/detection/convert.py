"""Raw detection datasets -> one record per image with every face's box, five points and flags.

Formats: `widerface` (official wider_face_*_bbx_gt.txt), `retinaface` (label.txt with five points), `images`
(a folder of face-free images: negatives), and every landmark format (ibug68, mtfl, wflw, 300wlp, aflw2000):
one face per sample, its box from the landmarks by the scheme's rule (facekit.landmarks.face_box_xyxy) and its
five points by the scheme's mapping. Driven by facekit.records.convert.convert_dataset (shards, manifest, resume).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from facekit.draw import draw_detections, letterbox_tile, tile
from facekit.landmarks import face_box_xyxy, five_points
from facekit.records import schema
from facekit.records.convert import read_image, reason_counts
from facekit.records.datasets import FORMATS, ReaderOptions, SampleError, get_format
from facekit.records.datasets.base import IMAGE_EXTENSIONS
from facekit.records.datasets.wider import read_wider_annotations

ANNOTATED_FORMATS = ("widerface", "retinaface")
DETECTION_FORMATS = ANNOTATED_FORMATS + ("images",) + tuple(sorted(FORMATS))
MIN_FACE_AREA = 16.0  # faces with w * h below this (pixels of the stored image) are left out, as in the reference


@dataclass(frozen=True)
class DetectionSettings:
    """Everything that determines the output bytes (saved in the manifest; a resume must match it).

    max_side: images whose longer side exceeds it are resized to it (and re-encoded as JPEG); others keep their
    source bytes. annotations: the annotation file of widerface / retinaface (or of mtfl / wflw)."""

    format: str
    max_side: int = 1024
    annotations: str | None = None
    shard_size: int = 500
    jpeg_quality: int = 95
    min_face_area: float = MIN_FACE_AREA

    def __post_init__(self):
        if self.format not in DETECTION_FORMATS:
            raise ValueError(f"unknown detection format {self.format!r}; choose from {list(DETECTION_FORMATS)}")
        if self.max_side < 32:
            raise ValueError(f"max side must be at least 32, got {self.max_side}")
        if self.format in ANNOTATED_FORMATS and not self.annotations:
            raise ValueError(f"format {self.format} needs --annotations (the bbx_gt.txt or label.txt file)")

    def list_items(self, input_dir: str) -> list:
        if self.format in ANNOTATED_FORMATS:
            path = self.annotations if os.path.isfile(self.annotations) else os.path.join(input_dir,
                                                                                         self.annotations)
            if not os.path.isfile(path):
                raise ValueError(f"{self.annotations}: annotation file not found")
            return [(image.path, image.boxes_xyxy, image.landmarks_px, image.attributes, image.invalid)
                    for image in read_wider_annotations(path)]
        if self.format == "images":
            paths = [os.path.relpath(os.path.join(root, name), input_dir)
                     for root, _, files in os.walk(input_dir) for name in files
                     if name.lower().endswith(IMAGE_EXTENSIONS)]
            return sorted(paths)
        return get_format(self.format).list_items(input_dir, ReaderOptions(annotations=self.annotations))

    def prepare(self, input_dir: str, item) -> schema.DetectionRecord:
        return prepare_detection_record(input_dir, item, self)

    encode = staticmethod(schema.encode_detection_example)

    def write_preview(self, path: str, converted: list) -> None:
        write_detection_preview(path, [record for record, _ in converted])

    def shard_fields(self, converted: list) -> dict:
        """converted [(item name, DetectionRecord)] of one shard -> its face counts for the manifest."""
        dropped = [{"source": source, "reason": reason} for source, record in converted for reason in record.dropped]
        return {"num_faces": sum(len(record.boxes_xyxy) for _, record in converted), "dropped_faces": dropped}

    def manifest_fields(self, shards: list[dict]) -> dict:
        dropped = [d for s in shards for d in s.get("dropped_faces", [])]
        return {"task": "detection", "format": self.format, "scheme": "five", "num_points": 5,
                "max_side": self.max_side, "num_faces": sum(s.get("num_faces", 0) for s in shards),
                "num_faces_dropped": len(dropped),
                "dropped_faces_by_reason": reason_counts(dropped),
                "dropped_faces": dropped}


def _faces(input_dir: str, item, settings: DetectionSettings):
    """-> (image path, boxes (F, 4), landmarks (F, 5, 2) NaN where absent, flags (F, 6), source id)."""
    if settings.format in ANNOTATED_FORMATS:
        path, boxes, landmarks, flags, invalid = item
        count = len(boxes)
        landmarks = np.full((count, 5, 2), np.nan) if landmarks is None else np.asarray(landmarks, np.float64)
        flags = np.asarray(flags, np.int64).reshape(count, -1) if np.size(flags) else np.full((count, 6), -1)
        flags[:, 3] = np.where(invalid, 1, flags[:, 3])
        return os.path.join(input_dir, path), np.asarray(boxes, np.float64), landmarks, flags, path
    if settings.format == "images":
        return os.path.join(input_dir, item), np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros((0, 6), int), item
    fmt = get_format(settings.format)
    sample = fmt.load_sample(input_dir, item, ReaderOptions(annotations=settings.annotations))
    points = sample.points_px
    if points.shape != (fmt.scheme.num_points, 2) or not np.isfinite(points).all():
        raise SampleError(f"{sample.image_path}: landmarks are missing, not finite or not {fmt.scheme.num_points}")
    flags = np.full((1, schema.NUM_FACE_FLAGS), -1)
    return (sample.image_path, face_box_xyxy(points, fmt.scheme)[None], five_points(points, fmt.scheme)[None],
            flags, sample.source_id)


def prepare_detection_record(input_dir: str, item, settings: DetectionSettings) -> schema.DetectionRecord:
    """One image and its faces -> a validated DetectionRecord. Faces that cannot be used (not finite, zero area,
    outside the image, under min_face_area after clipping to the image) are left out and listed in `dropped`."""
    image_path, boxes, landmarks, flags, source_id = _faces(input_dir, item, settings)
    image, (height, width) = read_image(image_path)
    with open(image_path, "rb") as f:
        data = f.read()
    scale = min(1.0, settings.max_side / max(height, width))
    if scale < 1 or data[:2] != b"\xff\xd8" and data[:8] != b"\x89PNG\r\n\x1a\n":
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_xy = np.array([size[0] / width, size[1] / height])
            boxes, landmarks = boxes * np.tile(scale_xy, 2), landmarks * scale_xy
            height, width = image.shape[:2]
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
        if not ok:
            raise SampleError(f"{image_path}: JPEG encoding failed")
        data = encoded.tobytes()
    keep, dropped = [], []
    for index, box in enumerate(boxes):
        reason = _face_problem(box, width, height, settings.min_face_area)
        if reason:
            dropped.append(f"{image_path}: {reason[0]} (face {index}{reason[1]})")
        else:
            keep.append(index)
    boxes = np.clip(boxes[keep], 0, [width, height, width, height]).reshape(-1, 4)
    landmarks = landmarks[keep].reshape(-1, 5, 2)
    landmarks[~np.isfinite(landmarks).all(axis=(1, 2))] = np.nan  # a face has all five points or none
    return schema.DetectionRecord(source_id=source_id, image_bytes=data, source_hw=(height, width),
                                   boxes_xyxy=boxes, landmarks_px=landmarks, flags=flags[keep].reshape(-1, 6),
                                   dropped=dropped)


def _face_problem(box: np.ndarray, width: int, height: int, min_area: float) -> tuple[str, str] | None:
    """(problem, detail) of a face box that cannot be used, or None."""
    if not np.isfinite(box).all():
        return "box is not finite", ""
    w, h = box[2] - box[0], box[3] - box[1]
    if w <= 0 or h <= 0:
        return "box has zero area", f", {w:.1f} x {h:.1f}"
    clipped = np.clip(box, 0, [width, height, width, height])
    cw, ch = clipped[2] - clipped[0], clipped[3] - clipped[1]
    if cw <= 0 or ch <= 0:
        return "box outside the image", f", {box.round(1).tolist()} in {width}x{height}"
    if cw * ch < min_area:
        return f"face under {min_area:g} px²", f", {cw:.1f} x {ch:.1f}"
    return None


def write_detection_preview(path: str, converted: list[schema.DetectionRecord], count: int = 16,
                            size: int = 256) -> None:
    """A grid of the first converted images with their boxes and points drawn."""
    tiles = []
    for record in converted[:count]:
        image = cv2.imdecode(np.frombuffer(record.image_bytes, np.uint8), cv2.IMREAD_COLOR)
        thickness = max(1, round(max(image.shape[:2]) / 300))
        tiles.append(letterbox_tile(draw_detections(image, record.boxes_xyxy, record.landmarks_px,
                                                    thickness=thickness), size))
    if tiles:
        cv2.imwrite(path, tile(tiles, columns=4), [cv2.IMWRITE_JPEG_QUALITY, 90])
