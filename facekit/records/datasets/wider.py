"""WIDER FACE annotations: the official `wider_face_{train,val}_bbx_gt.txt` and RetinaFace's `label.txt`.

Both give, per image, face boxes as x y w h in pixels, read here as continuous xyxy [x, y, x + w, y + h].
Quirk of the official files: an image without faces still carries one row of zeros, after a count of 0 (train) or
of 1 (val); such all-zero rows are not faces. `invalid` faces stay in the list with invalid=True, because the
evaluation must ignore (not penalise) detections on them; training code drops them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class WiderImage:
    """path: relative to the images/ folder; boxes_xyxy (F, 4); invalid (F,) bool; landmarks_px (F, 5, 2) with
    NaN where unknown (RetinaFace -1), None for the official files; attributes (F, 6) blur, expression,
    illumination, invalid, occlusion, pose (-1 unknown)."""

    path: str
    boxes_xyxy: np.ndarray
    invalid: np.ndarray
    landmarks_px: np.ndarray | None = None
    attributes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.int32))

    @property
    def valid_boxes(self) -> np.ndarray:
        return self.boxes_xyxy[~self.invalid]


def _numbers(line: str, source: str, number: int) -> list[float]:
    try:
        return [float(v) for v in line.split()]
    except ValueError:
        raise ValueError(f"{source}:{number}: expected numbers, got {line.strip()!r}") from None


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1).astype(np.float32)


def read_wider_gt(path: str) -> list[WiderImage]:
    """Parse an official bbx_gt file: path line, face count, then count rows of x y w h + 6 flags."""
    lines = open(path).read().splitlines()
    images, index = [], 0
    while index < len(lines):
        name = lines[index].strip()
        if not name:
            index += 1
            continue
        if index + 1 >= len(lines) or not lines[index + 1].strip().isdigit():
            raise ValueError(f"{path}:{index + 2}: expected the face count of {name!r}")
        count = int(lines[index + 1])
        rows_count = max(count, 1)  # a count of 0 is still followed by one row of zeros
        rows = [_numbers(lines[index + 2 + k], path, index + 3 + k) for k in range(rows_count)
                if index + 2 + k < len(lines)]
        if len(rows) != rows_count or any(len(r) < 4 for r in rows):
            raise ValueError(f"{path}:{index + 3}: {name} needs {rows_count} rows of x y w h + flags")
        rows = np.asarray([r[:10] + [-1] * (10 - len(r)) for r in rows], np.float64).reshape(-1, 10)
        rows = rows[(rows[:, 2] > 0) | (rows[:, 3] > 0)]  # the all-zero row of a face-less image
        images.append(WiderImage(name, _xyxy(rows), rows[:, 7] == 1, None, rows[:, 4:10].astype(np.int32)))
        index += 2 + rows_count
    return images


def retinaface_label_line(box_xyxy, landmarks_px) -> str:
    """One face of RetinaFace's label.txt: `x y w h`, five `x y 0.0` triples (`-1.0 -1.0 -1.0` for absent
    points, NaN) and `1.0`."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    points = " ".join("-1.0 -1.0 -1.0" if not np.all(np.isfinite(p)) else f"{p[0]:.2f} {p[1]:.2f} 0.0"
                      for p in np.asarray(landmarks_px, np.float64).reshape(5, 2))
    return f"{x0:.2f} {y0:.2f} {x1 - x0:.2f} {y1 - y0:.2f} {points} 1.0"


def read_retinaface_labels(path: str) -> list[WiderImage]:
    """Parse RetinaFace's label.txt: `# path` lines, then per face x y w h [5 x (x y flag)] [score]."""
    images: list[WiderImage] = []
    rows: list[list[float]] = []

    def finish():
        if images:
            table = np.asarray([r[:19] + [-1.0] * (19 - len(r)) for r in rows], np.float64).reshape(-1, 19)
            marks = table[:, 4:19].reshape(-1, 5, 3)[..., :2].copy()
            marks[marks < 0] = np.nan
            images[-1].boxes_xyxy, images[-1].landmarks_px = _xyxy(table), marks.astype(np.float32)
            images[-1].invalid = np.zeros(len(table), bool)
            images[-1].attributes = np.full((len(table), 6), -1, np.int32)

    for number, line in enumerate(open(path), start=1):
        if line.startswith("#"):
            finish()
            images.append(WiderImage(line[1:].split()[0], np.zeros((0, 4), np.float32), np.zeros(0, bool)))
            rows = []
        elif line.strip():
            if not images:
                raise ValueError(f"{path}:{number}: a face row before the first '# path' line")
            values = _numbers(line, path, number)
            if len(values) < 4:
                raise ValueError(f"{path}:{number}: a face row needs at least x y w h, got {line.strip()!r}")
            rows.append(values)
    finish()
    return images


def read_wider_annotations(path: str) -> list[WiderImage]:
    """Either format, told apart by the first line ('# ' starts RetinaFace's)."""
    with open(path) as f:
        first = f.readline()
    return read_retinaface_labels(path) if first.startswith("#") else read_wider_gt(path)
