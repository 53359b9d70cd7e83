"""Profile one 68-point face: fit it, then render views from its own yaw outward in steps, with landmarks in both
300W-LP conventions, and write them in the 300W-LP layout.

pts_3d: every annotated point carried through the fitted surface (the convention of AFLW2000-3D's labels).
pts_2d: the same, except the jaw points on the side turned away, which move to the visible outline (the contour
line vertex with the most extreme rotated x), as 300W-LP's `pt2d`. Poses are (pitch, yaw, roll) in radians with
300W-LP's signs (facekit.pose).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.io

from facekit.pose import euler_from_matrix
from facekit.profiling.fit import FaceModel, Fit, Pose, fit_points
from facekit.profiling.render import build_scene, carried_points, render, turned, view_positions

FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # the model frame (y up, z to the camera) <-> OpenCV axes (facekit.pose)


@dataclass(frozen=True)
class View:
    image: np.ndarray           # (H, W, 3) as the source
    pts_2d: np.ndarray          # (68, 2) px, visible-outline jaw
    pts_3d: np.ndarray          # (68, 2) px, surface jaw
    pose_rad: np.ndarray        # (3,) pitch, yaw, roll


def pose_angles(pose: Pose) -> np.ndarray:
    """(pitch, yaw, roll) radians, 300W-LP's signs, of a fitted pose."""
    return euler_from_matrix(FLIP_YZ @ pose.rotation @ FLIP_YZ)


def outline_jaw(model: FaceModel, fit: Fit, pose: Pose) -> dict[int, np.ndarray]:
    """{jaw index: pixel} for the jaw points on the side turned away under `pose`: each contour line's vertex
    with the most extreme rotated x."""
    side = pose.yaw_sign()
    out = {}
    for j in (range(0, 8) if side < 0 else range(9, 17)):
        line = model.contours[j]
        vertices = model.mean[line] + model.basis[line] @ fit.coef
        xs = vertices @ pose.rotation[0]
        out[j] = pose.project(vertices[[np.argmin(xs) if side < 0 else np.argmax(xs)]])[0]
    return out


def yaw_steps(yaw_deg: float, step_deg: float, max_deg: float) -> list[float]:
    """Turns (degrees, signed outward) from a face's own |yaw| up to max_deg in steps: 0 first (the face itself)."""
    turns, target = [0.0], (np.floor(abs(yaw_deg) / step_deg) + 1) * step_deg
    while target <= max_deg + 1e-9:
        turns.append(target - abs(yaw_deg))
        target += step_deg
    return turns


def profile_face(image: np.ndarray, points_px: np.ndarray, model: FaceModel, step_deg: float = 5.0,
                 max_deg: float = 90.0, max_error: float = 0.08) -> list[View]:
    """Views of one face from its own yaw outward. ValueError when the fit's mean error exceeds max_error of the
    outer-eye-corner distance (a face the model cannot explain would give wrong labels)."""
    fit = fit_points(points_px, model)
    relative = fit.error.mean() / np.linalg.norm(points_px[36] - points_px[45])
    if relative > max_error:
        raise ValueError(f"fit error {100 * relative:.1f}% of the eye distance exceeds {100 * max_error:.0f}%")
    scene = build_scene(model, fit, image.shape[:2])
    sign = -fit.pose.yaw_sign()  # outward: the way the nose already points (yaw_sign is +1 to the image right)
    views = []
    for turn in yaw_steps(np.degrees(pose_angles(fit.pose)[1]), step_deg, max_deg):
        delta = -sign * turn  # yaw_rotation: positive turns the nose to the image right
        new_px, new_depth = view_positions(scene, fit.pose, delta)
        pts_3d = carried_points(points_px, scene, new_px)
        pose = turned(fit.pose, delta)
        pts_2d = pts_3d.copy()
        if turn:
            for j, point in outline_jaw(model, fit, pose).items():
                pts_2d[j] = point
        views.append(View(render(image, scene, new_px, new_depth) if turn else image.copy(), pts_2d, pts_3d,
                          pose_angles(pose)))
    return views


def write_300wlp_view(root: str, subset: str, name: str, view: View) -> None:
    """root/SUBSET/NAME.jpg + NAME.mat (pt2d (2, 68), Pose_Para (1, 7)) and root/landmarks/SUBSET/NAME_pts.mat
    (pts_2d, pts_3d (68, 2)), in Matlab's 1-based pixel centres as 300W-LP writes them."""
    for folder in (os.path.join(root, subset), os.path.join(root, "landmarks", subset)):
        os.makedirs(folder, exist_ok=True)
    one_based = 0.5  # continuous coordinates -> 1-based pixel centres (facekit.geometry)
    pose = np.concatenate([view.pose_rad, np.zeros(4)])[None]
    scipy.io.savemat(os.path.join(root, "landmarks", subset, f"{name}_pts.mat"),
                     {"pts_2d": view.pts_2d + one_based, "pts_3d": view.pts_3d + one_based})
    scipy.io.savemat(os.path.join(root, subset, f"{name}.mat"), {"pt2d": (view.pts_2d + one_based).T,
                                                                 "Pose_Para": pose})
    cv2.imwrite(os.path.join(root, subset, f"{name}.jpg"), view.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
