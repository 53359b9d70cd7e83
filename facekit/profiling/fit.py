"""Fit a 3D morphable face model to a face's 68 points: scaled-orthographic pose and the shape and expression
coefficients, with the jaw points on the side turned away marched along their contour lines to the outline.

The model is the research-only `face3d/bfm3ddfa_grid64.npz` (see its README): millimetres, +x image right for a
frontal face, +y up, +z towards the camera. A point X projects to u = s (R X)_x + t_u, v = -s (R X)_y + t_v. Each
iteration solves the pose from the current 3D keypoints (affine least squares, then the nearest rotation), picks
the away-side jaw correspondences (the contour-line vertex with the most extreme rotated x), and solves the 40 + 10
coefficients by regularised linear least squares (observation sigma: a fraction of the outer-eye-corner
distance; prior c ~ N(prior mean, I)).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

MODEL_KEYS = ("mean", "shp_basis", "exp_basis", "valid", "tri", "kpt_mean", "kpt_shp_basis", "kpt_exp_basis",
              "contour_grid_idx", "contour_grid_ptr", "shp_coef_prior_mean", "exp_coef_prior_mean")
JAW = np.arange(17)
OUTER_EYE_CORNERS = (36, 45)


@dataclass(frozen=True)
class FaceModel:
    """The morphable model's arrays (names as in the .npz); bases stacked as (N, 3, 50) shape then expression."""
    mean: np.ndarray            # (4096, 3) grid points, mm
    basis: np.ndarray           # (4096, 3, 50)
    valid: np.ndarray           # (4096,) bool
    tri: np.ndarray             # (T, 3) grid triangles
    kpt_mean: np.ndarray        # (68, 3)
    kpt_basis: np.ndarray       # (68, 3, 50)
    contours: tuple             # 17 arrays of grid indices: jaw point j's parallel line
    prior: np.ndarray           # (50,) coefficient prior mean


def load_face_model(path: str) -> FaceModel:
    """Read the .npz; ValueError names the file and what is missing."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such face model file")
    with np.load(path) as data:
        missing = [key for key in MODEL_KEYS if key not in data.files]
        if missing:
            raise ValueError(f"{path}: not a face3d model, missing {missing}")
        d = {key: data[key] for key in MODEL_KEYS}
    ptr, idx = d["contour_grid_ptr"], d["contour_grid_idx"]
    return FaceModel(
        mean=d["mean"].astype(np.float64), basis=np.concatenate([d["shp_basis"], d["exp_basis"]], 2).astype(np.float64),
        valid=d["valid"], tri=d["tri"], kpt_mean=d["kpt_mean"].astype(np.float64),
        kpt_basis=np.concatenate([d["kpt_shp_basis"], d["kpt_exp_basis"]], 2).astype(np.float64),
        contours=tuple(idx[ptr[j]:ptr[j + 1]] for j in range(17)),
        prior=np.concatenate([d["shp_coef_prior_mean"], d["exp_coef_prior_mean"]]).astype(np.float64))


@dataclass(frozen=True)
class Pose:
    scale: float                # px per mm
    rotation: np.ndarray        # (3, 3)
    translation: np.ndarray     # (2,) px

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """(N, 3) model points -> (N, 2) image points."""
        rotated = points_mm @ self.rotation.T
        return np.stack([self.scale * rotated[:, 0] + self.translation[0],
                         -self.scale * rotated[:, 1] + self.translation[1]], axis=1)

    def yaw_sign(self) -> int:
        """-1 when the nose points to the image left, +1 to the right (rotated +z's x component)."""
        return -1 if self.rotation[0, 2] < 0 else 1


@dataclass(frozen=True)
class Fit:
    pose: Pose
    coef: np.ndarray            # (50,) shape then expression, in prior standard deviations
    jaw_grid: np.ndarray        # (17,) grid point of each jaw keypoint on the away side, -1 where the keypoint
    error: np.ndarray           # (68,) reprojection error, px


def solve_pose(points_mm: np.ndarray, points_px: np.ndarray) -> Pose:
    """Scaled-orthographic pose: affine least squares (y flipped to up), then the nearest scaled rotation."""
    target = points_px * [1.0, -1.0]
    design = np.concatenate([points_mm, np.ones((len(points_mm), 1))], axis=1)
    affine, *_ = np.linalg.lstsq(design, target, rcond=None)  # (4, 2)
    linear = affine[:3].T  # (2, 3)
    u, s, vt = np.linalg.svd(linear, full_matrices=False)
    rows = u @ vt
    rotation = np.stack([rows[0], rows[1], np.cross(rows[0], rows[1])])
    scale = float(s.mean())
    translation = (target - scale * points_mm @ rotation[:2].T).mean(axis=0) * [1.0, -1.0]
    return Pose(scale, rotation, translation)


def keypoint_rows(model: FaceModel, pose: Pose, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 68 correspondences under the current pose: (means (68, 3), bases (68, 3, 50), jaw grid indices (17,))
    with the away-side jaw points replaced by the outline vertex of their contour line."""
    means, bases = model.kpt_mean.copy(), model.kpt_basis.copy()
    jaw_grid = np.full(17, -1)
    for j, k in outline_vertices(model, pose, coef).items():
        means[j], bases[j], jaw_grid[j] = model.mean[k], model.basis[k], k
    return means, bases, jaw_grid


def outline_vertices(model: FaceModel, pose: Pose, coef: np.ndarray) -> dict[int, int]:
    """{jaw index: grid point} for the jaw points on the side turned away under `pose`: each contour line's vertex
    with the most extreme rotated x (the visible outline)."""
    side = pose.yaw_sign()
    chosen = {}
    for j in (range(0, 8) if side < 0 else range(9, 17)):
        line = model.contours[j]
        xs = (model.mean[line] + model.basis[line] @ coef) @ pose.rotation[0]
        chosen[j] = int(line[np.argmin(xs) if side < 0 else np.argmax(xs)])
    return chosen


def fit_points(points_px: np.ndarray, model: FaceModel, iterations: int = 10, sigma: float = 0.02) -> Fit:
    """68 points (68, 2) in pixels -> Fit. sigma: observation noise as a fraction of the outer-eye-corner
    distance, weighing the points against the coefficient prior."""
    points_px = np.asarray(points_px, np.float64)
    if points_px.shape != (68, 2) or not np.isfinite(points_px).all():
        raise ValueError(f"expected 68 finite (x, y) points, got shape {points_px.shape}")
    noise = sigma * np.linalg.norm(points_px[OUTER_EYE_CORNERS[0]] - points_px[OUTER_EYE_CORNERS[1]])
    coef = model.prior.copy()
    pose = solve_pose(model.kpt_mean + model.kpt_basis @ coef, points_px)
    for _ in range(iterations):
        means, bases, jaw_grid = keypoint_rows(model, pose, coef)
        pose = solve_pose(means + bases @ coef, points_px)
        means, bases, jaw_grid = keypoint_rows(model, pose, coef)
        project = pose.scale * pose.rotation[:2] * np.array([[1.0], [-1.0]])  # (2, 3): mm -> px, image y down
        design = np.einsum("ij,kjc->kic", project, bases).reshape(-1, coef.size)  # (136, 50)
        offset = (points_px - pose.translation - means @ project.T).reshape(-1)
        normal = design.T @ design / noise ** 2 + np.eye(coef.size)
        coef = np.linalg.solve(normal, design.T @ offset / noise ** 2 + model.prior)
    means, bases, jaw_grid = keypoint_rows(model, pose, coef)
    error = np.linalg.norm(pose.project(means + bases @ coef) - points_px, axis=1)
    return Fit(pose, coef, jaw_grid, error)
