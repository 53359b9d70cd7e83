"""The in-memory sample every reader produces, reader options, and the helpers the readers share."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")


class SampleError(ValueError):
    """A sample that cannot be converted; the message names the file and the problem."""


@dataclass
class Sample:
    """One annotated face.

    source_id: path relative to the input folder (with "#N" for the N-th face of a multi-face line file).
    image_path: absolute path of the image.
    points_px: (K, 2) float64 landmarks in continuous pixel coordinates (see facekit.geometry).
    pose_rad: (3,) pitch, yaw, roll in radians when the format has it, else None.
    box_xyxy: (4,) face box from the annotation, continuous pixels, when the format has one.
    attributes: WFLW-style flags (pose, expression, illumination, make-up, occlusion, blur) when present.
    """

    source_id: str
    image_path: str
    points_px: np.ndarray
    pose_rad: np.ndarray | None = None
    box_xyxy: np.ndarray | None = None
    attributes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ReaderOptions:
    """landmarks_source: 300W-LP only, "pt2d" (in NAME.mat) or "pts_2d"/"pts_3d" (landmarks/<SUBSET>/NAME_pts.mat).
    exclude_300w_test: 300W-LP only, drop images derived from 300W test sets (IBUG, LFPW test).
    annotations: the annotation list file for line formats (WFLW, MTFL); relative paths are under the input.
    """

    landmarks_source: str = "pt2d"
    exclude_300w_test: bool = False
    annotations: str | None = None


def find_image(stem_path: str) -> str:
    """The image beside an annotation file with the same stem; SampleError if there is none."""
    for ext in IMAGE_EXTENSIONS:
        for candidate in (stem_path + ext, stem_path + ext.upper()):
            if os.path.exists(candidate):
                return candidate
    raise SampleError(f"{stem_path}.*: no image ({', '.join(IMAGE_EXTENSIONS)}) beside the annotation")


def annotation_path(input_dir: str, options: ReaderOptions, default: str | None) -> str:
    """Resolve the line-format annotation file, or raise ValueError naming what is missing."""
    name = options.annotations or default
    if name is None:
        raise ValueError("this format needs --annotations FILE (the annotation list)")
    path = name if os.path.isabs(name) else os.path.join(input_dir, name)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: annotation file not found")
    return path


def parse_numbers(tokens: list[str], source: str) -> np.ndarray:
    """Tokens -> float64 array; SampleError naming the source on a token that is not a number."""
    try:
        return np.array([float(t) for t in tokens], np.float64)
    except ValueError as err:
        raise SampleError(f"{source}: {err}") from None
