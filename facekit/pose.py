"""Head pose: a reference 3D face for the iBUG 68 points, Euler angles, and pose estimation from 2D landmarks.

Frame of the reference face: x to the image right, y down, z away from the camera (OpenCV camera axes), units of
roughly millimetres with the outer eye corners at x = -45 and +45 on the line y = 0. It was drawn here from
average facial proportions (not fitted to any dataset) and is mirror-symmetric by construction.

Angles are (pitch, yaw, roll) in radians, as in 300W-LP's `Pose_Para`: the camera-frame face is
face_rotation(pose) @ X, an Rx(-pitch) @ Ry(yaw) @ Rz(roll) rotation. Signs follow 300W-LP (checked on the
AFLW2000-3D samples): positive pitch raises the face (the nose moves up in the image), positive yaw turns the
nose towards the image left, positive roll turns the face clockwise on screen. A horizontal flip keeps pitch
and negates yaw and roll.
"""
from __future__ import annotations

import cv2
import numpy as np

from facekit.landmarks import FIVE, IBUG68, LandmarkScheme, five_from_ibug68

# iBUG68 points used for pose: nose (27-35), eye corners, mouth corners. Not the jaw contour (in 300W-LP it
# follows the visible outline, not fixed 3D points), nor brows and chin (they move with expression).
POSE_POINTS_68 = (27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45, 48, 54)


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """(3, 3) R = Rx(-pitch) @ Ry(yaw) @ Rz(roll) (pitch negated so that positive pitch raises the face)."""
    cp, sp, cy, sy, cr, sr = np.cos(-pitch), np.sin(-pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rx @ ry @ rz


def euler_from_matrix(r: np.ndarray) -> np.ndarray:
    """Inverse of rotation_matrix for |yaw| < 90 deg: (3, 3) -> (pitch, yaw, roll) radians."""
    yaw = np.arcsin(np.clip(r[0, 2], -1.0, 1.0))
    pitch = np.arctan2(r[1, 2], r[2, 2])
    roll = np.arctan2(-r[0, 1], r[0, 0])
    return np.array([pitch, yaw, roll])


def _reference_face_ibug68() -> np.ndarray:
    """(68, 3) reference points; the subject's right side is written out, the left side mirrored from it."""
    pts = np.full((68, 3), np.nan)
    phi = np.pi * np.arange(17) / 16  # jaw: half ellipse from the right ear (image left) to the left ear
    pts[:17] = np.stack([-73 * np.cos(phi), 118 * np.sin(phi), -15 + 80 * np.abs(np.cos(phi)) ** 1.5], axis=1)
    pts[17:22] = [[-63, -22, 15], [-50, -30, 2], [-36, -32, -6], [-23, -30, -10], [-11, -26, -12]]
    pts[27:31] = [[0, 0, -10], [0, 16, -22], [0, 32, -34], [0, 47, -45]]
    pts[31:34] = [[-17, 57, -18], [-9, 60, -26], [0, 62, -30]]
    pts[[36, 37, 38, 39, 40, 41]] = [[-45, 0, 8], [-37, -7, 2], [-25, -7, 0], [-16, 0, 2], [-25, 4, 0],
                                     [-37, 4, 2]]
    pts[[48, 49, 50, 51]] = [[-26, 85, -10], [-16, 78, -20], [-6, 75, -24], [0, 76, -25]]
    pts[[57, 58, 59]] = [[0, 96, -23], [-7, 95, -22], [-16, 92, -18]]
    pts[[60, 61, 62]] = [[-21, 85, -14], [-7, 83, -21], [0, 83, -22]]
    pts[[66, 67]] = [[0, 86, -22], [-7, 86, -21]]
    perm = IBUG68.flip_permutation
    left = np.isnan(pts[:, 0])
    pts[left] = pts[perm[left]] * [-1, 1, 1]
    return pts


REFERENCE_FACE_68 = _reference_face_ibug68()  # (68, 3)

# 300W-LP's zero pitch is this face's pitch of +8.2 deg (median over the 16 AFLW2000-3D samples in shared/data;
# yaw and roll needed no offset). It comes from the hand-drawn depths, so it is applied to the angle in one place.
PITCH_OFFSET_RAD = np.radians(8.2)


def face_rotation(pose_rad: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in 300W-LP's convention -> (3, 3) rotation of REFERENCE_FACE_68 into the camera frame."""
    pitch, yaw, roll = pose_rad
    return rotation_matrix(pitch + PITCH_OFFSET_RAD, yaw, roll)


def reference_points(scheme: LandmarkScheme) -> tuple[np.ndarray, np.ndarray]:
    """The scheme's points usable for pose and their 3D reference: (indices (N,), points (N, 3))."""
    if scheme.name == FIVE.name:
        return np.arange(5), five_from_ibug68(REFERENCE_FACE_68)
    if scheme.to_ibug68 is None:
        raise ValueError(f"scheme {scheme.name} has no 3D reference for pose estimation")
    pairs = [(i, j) for i, j in enumerate(scheme.to_ibug68) if j in POSE_POINTS_68]
    idx = np.array([i for i, _ in pairs])
    return idx, REFERENCE_FACE_68[[j for _, j in pairs]]


def estimate_pose(points_px: np.ndarray, image_hw: tuple[int, int], scheme: LandmarkScheme) -> np.ndarray:
    """2D landmarks (K, 2) of the scheme in an image of (H, W) -> (pitch, yaw, roll) radians, via cv2.solvePnP.

    The camera is a pinhole with focal length max(H, W) centred on the image, no distortion.
    """
    idx, object_points = reference_points(scheme)
    h, w = image_hw
    f = float(max(h, w))
    camera = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    image_points = np.ascontiguousarray(points_px[idx], np.float64)
    ok, rvec, _ = cv2.solvePnP(object_points, image_points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("solvePnP found no pose for these landmarks")
    return euler_from_matrix(cv2.Rodrigues(rvec)[0]) - [PITCH_OFFSET_RAD, 0.0, 0.0]
