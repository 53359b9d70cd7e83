"""Line-per-face annotation lists: WFLW (98 points) and MTFL (5 points), 0-based pixel coordinates.

WFLW line: 196 coordinates (x0 y0 x1 y1 ...), face box x_min y_min x_max y_max, 6 attribute flags (pose,
expression, illumination, make-up, occlusion, blur), image path relative to the image folder (--input).
MTFL line: image path, x1..x5, y1..y5 [, gender, smile, glasses, pose (ignored)].
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np

from facekit.geometry import pixel_centres_to_continuous
from facekit.records.datasets.base import ReaderOptions, Sample, SampleError, annotation_path, parse_numbers

LineItem = tuple[str, str, str]  # (source_id, "FILE:LINE" for messages, the line's text)


def _list_lines(input_dir: str, annotations: str, path_column: int) -> list[LineItem]:
    """Non-empty lines with a unique source id: the image path, plus "#N" for the N-th face of a repeated image."""
    with open(annotations, encoding="utf-8") as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    seen: Counter = Counter()
    items = []
    for n, line in lines:
        image = line.split()[path_column].replace("\\", "/")
        seen[image] += 1
        source_id = image if seen[image] == 1 else f"{image}#{seen[image]}"
        items.append((source_id, f"{annotations}:{n}", line))
    return items


def _image(input_dir: str, source_id: str) -> str:
    return os.path.join(input_dir, source_id.partition("#")[0])


def list_wflw(input_dir: str, options: ReaderOptions) -> list[LineItem]:
    return _list_lines(input_dir, annotation_path(input_dir, options, None), -1)


def load_wflw(input_dir: str, item: LineItem, options: ReaderOptions) -> Sample:
    source_id, where, line = item
    tokens = line.split()
    if len(tokens) != 207:
        raise SampleError(f"{where}: WFLW line has {len(tokens)} fields, expected 207 "
                          "(196 coordinates, 4 box values, 6 flags, image path)")
    values = parse_numbers(tokens[:206], where)
    return Sample(source_id=source_id, image_path=_image(input_dir, source_id),
                  points_px=pixel_centres_to_continuous(values[:196].reshape(98, 2), 0),
                  box_xyxy=pixel_centres_to_continuous(values[196:200].reshape(2, 2), 0).ravel(),
                  attributes=tuple(int(v) for v in values[200:206]))


def list_mtfl(input_dir: str, options: ReaderOptions) -> list[LineItem]:
    return _list_lines(input_dir, annotation_path(input_dir, options, "training.txt"), 0)


def load_mtfl(input_dir: str, item: LineItem, options: ReaderOptions) -> Sample:
    source_id, where, line = item
    tokens = line.split()
    if len(tokens) not in (11, 15):
        raise SampleError(f"{where}: MTFL line has {len(tokens)} fields, expected 11 (path, x1..x5, y1..y5) "
                          "or 15 (with 4 attributes)")
    values = parse_numbers(tokens[1:11], where)
    points = np.stack([values[:5], values[5:]], axis=1)
    return Sample(source_id=source_id, image_path=_image(input_dir, source_id),
                  points_px=pixel_centres_to_continuous(points, 0))
