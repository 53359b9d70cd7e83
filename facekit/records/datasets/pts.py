"""iBUG 300W `.pts` files (1-based pixel centres), with or without the `version / n_points / { }` header.

The input folder is searched recursively; each NAME.pts needs an image NAME.jpg/.png/.ppm/... beside it.
"""
from __future__ import annotations

import os

import numpy as np

from facekit.geometry import pixel_centres_to_continuous
from facekit.records.datasets.base import ReaderOptions, Sample, SampleError, find_image, parse_numbers


def read_pts(path: str) -> np.ndarray:
    """A .pts file -> (K, 2) points as written (1-based). SampleError on a malformed file."""
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise SampleError(f"{path}: unreadable .pts file ({err})") from None
    declared = None
    if "{" in text:
        header, _, rest = text.partition("{")
        body, closed, _ = rest.partition("}")
        if not closed:
            raise SampleError(f"{path}: .pts file has '{{' but no closing '}}'")
        for line in header.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "n_points":
                declared = int(parse_numbers([value.strip()], path)[0])
    else:
        body = text
    values = parse_numbers(body.split(), path)
    if values.size % 2:
        raise SampleError(f"{path}: odd number of coordinates ({values.size})")
    points = values.reshape(-1, 2)
    if declared is not None and declared != len(points):
        raise SampleError(f"{path}: header says n_points {declared} but the file has {len(points)} points")
    return points


def list_pts(input_dir: str, options: ReaderOptions) -> list[str]:
    items = []
    for root, dirs, files in os.walk(input_dir):
        dirs.sort()
        items += [os.path.relpath(os.path.join(root, n), input_dir) for n in sorted(files) if n.endswith(".pts")]
    return items


def load_pts(input_dir: str, rel_path: str, options: ReaderOptions) -> Sample:
    path = os.path.join(input_dir, rel_path)
    points = read_pts(path)
    image_path = find_image(path[:-4])
    return Sample(source_id=os.path.relpath(image_path, input_dir), image_path=image_path,
                  points_px=pixel_centres_to_continuous(points, 1))
