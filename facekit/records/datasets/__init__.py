"""Readers for raw landmark datasets. Each format lists cheap, picklable items, then loads one Sample per item.

Listing runs once in the main process; loading (parsing annotation files) runs in the conversion workers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from facekit.landmarks import FIVE, IBUG68, WFLW98, LandmarkScheme
from facekit.records.datasets import lines, mat3d, pts
from facekit.records.datasets.base import ReaderOptions, Sample, SampleError


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    scheme: LandmarkScheme
    list_items: Callable[[str, ReaderOptions], list]  # (input_dir, options) -> items
    load_sample: Callable[[str, object, ReaderOptions], Sample]  # (input_dir, item, options) -> Sample
    points_leave_image: bool = False  # fitted 3D-model points may lie outside the photo (conversion keeps them)


FORMATS = {f.name: f for f in (
    DatasetFormat("300wlp", IBUG68, mat3d.list_300wlp, mat3d.load_300wlp, points_leave_image=True),
    DatasetFormat("aflw2000", IBUG68, mat3d.list_aflw2000, mat3d.load_aflw2000, points_leave_image=True),
    DatasetFormat("ibug68", IBUG68, pts.list_pts, pts.load_pts),
    DatasetFormat("wflw", WFLW98, lines.list_wflw, lines.load_wflw),
    DatasetFormat("mtfl", FIVE, lines.list_mtfl, lines.load_mtfl),
)}


def get_format(name: str) -> DatasetFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; choose from {sorted(FORMATS)}")
    return FORMATS[name]


__all__ = ["DatasetFormat", "FORMATS", "ReaderOptions", "Sample", "SampleError", "get_format"]
