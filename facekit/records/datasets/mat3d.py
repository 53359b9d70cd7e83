"""300W-LP and AFLW2000-3D: NAME.jpg + NAME.mat (3DDFA fitting results, Matlab 1-based pixel coordinates).

300W-LP root: AFW/, HELEN/, IBUG/, LFPW/ and their *_Flip/ folders, each NAME.jpg + NAME.mat with `pt2d` (2, 68)
and `Pose_Para` (1, 7: pitch, yaw, roll in radians, tx, ty, tz, scale); optionally landmarks/<SUBSET>/NAME_pts.mat
with `pts_2d` and `pts_3d` (68, 2). AFLW2000-3D: imageNNNNN.jpg + .mat with `pt3d_68` (3, 68; rows x, y, z).
"""
from __future__ import annotations

import os

import numpy as np
import scipy.io

from facekit.geometry import pixel_centres_to_continuous
from facekit.records.datasets.base import ReaderOptions, Sample, SampleError, find_image

LANDMARK_SOURCES = ("pt2d", "pts_2d", "pts_3d")
_TEST_FOLDERS = {"IBUG", "IBUG_Flip"}  # 300W's challenging test set


def _load_mat(path: str, keys: tuple[str, ...]) -> dict:
    try:
        mat = scipy.io.loadmat(path, variable_names=keys)
    except Exception as err:  # scipy raises several types for damaged files
        raise SampleError(f"{path}: unreadable .mat file ({type(err).__name__}: {err})") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise SampleError(f"{path}: .mat file has no {', '.join(missing)}")
    return mat


def _shaped(array: np.ndarray, shape: tuple[int, int], key: str, path: str) -> np.ndarray:
    if array.shape != shape:
        raise SampleError(f"{path}: {key} has shape {array.shape}, expected {shape}")
    return np.asarray(array, np.float64)


def _pose(mat: dict, path: str) -> np.ndarray:
    pose = np.asarray(mat["Pose_Para"], np.float64).ravel()
    if pose.size < 3:
        raise SampleError(f"{path}: Pose_Para has {pose.size} values, expected 7")
    return pose[:3]


def is_300w_test_image(rel_path: str) -> bool:
    """300W-LP images derived from 300W test sets: the IBUG folders and LFPW test images."""
    folder, name = os.path.split(rel_path)
    return folder in _TEST_FOLDERS or "image_test" in name


def list_300wlp(input_dir: str, options: ReaderOptions) -> list[str]:
    """Relative paths of the annotation .mat files, sorted, landmarks/ excluded."""
    if options.landmarks_source not in LANDMARK_SOURCES:
        raise ValueError(f"landmarks source {options.landmarks_source!r} is not one of {LANDMARK_SOURCES}")
    items = []
    for folder in sorted(os.listdir(input_dir)):
        full = os.path.join(input_dir, folder)
        if folder == "landmarks" or not os.path.isdir(full):
            continue
        items += [f"{folder}/{n}" for n in sorted(os.listdir(full)) if n.endswith(".mat")]
    if options.exclude_300w_test:
        items = [i for i in items if not is_300w_test_image(i)]
    return items


def load_300wlp(input_dir: str, rel_path: str, options: ReaderOptions) -> Sample:
    path = os.path.join(input_dir, rel_path)
    mat = _load_mat(path, ("pt2d", "Pose_Para"))
    if options.landmarks_source == "pt2d":
        points = _shaped(mat["pt2d"], (2, 68), "pt2d", path).T
    else:
        folder, name = os.path.split(rel_path)
        pts_path = os.path.join(input_dir, "landmarks", folder, name[:-4] + "_pts.mat")
        if not os.path.exists(pts_path):
            raise SampleError(f"{pts_path}: no such landmarks file (--landmarks-source {options.landmarks_source})")
        key = options.landmarks_source
        points = _shaped(_load_mat(pts_path, (key,))[key], (68, 2), key, pts_path)
    image_path = find_image(path[:-4])
    return Sample(source_id=os.path.relpath(image_path, input_dir), image_path=image_path,
                  points_px=pixel_centres_to_continuous(points, 1), pose_rad=_pose(mat, path))


def list_aflw2000(input_dir: str, options: ReaderOptions) -> list[str]:
    return sorted(n for n in os.listdir(input_dir) if n.endswith(".mat"))


def load_aflw2000(input_dir: str, rel_path: str, options: ReaderOptions) -> Sample:
    path = os.path.join(input_dir, rel_path)
    mat = _load_mat(path, ("pt3d_68", "Pose_Para"))
    points = _shaped(mat["pt3d_68"], (3, 68), "pt3d_68", path)[:2].T
    image_path = find_image(path[:-4])
    return Sample(source_id=os.path.relpath(image_path, input_dir), image_path=image_path,
                  points_px=pixel_centres_to_continuous(points, 1), pose_rad=_pose(mat, path))
