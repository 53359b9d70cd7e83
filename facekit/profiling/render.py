"""Turn a fitted face to a new yaw and re-render its photo: the face mesh plus background anchors (rings around the
face outline and the image border), drawn far to near with back faces culled into a triangle-id map, turned into a
per-pixel source map and one cv2.remap.

Frames: source view = the photo and its fit; new view = the head rotated by a camera-frame rotation about the
model origin (between the ears): profile.py picks the one that sets the Euler yaw and keeps pitch and roll.
Anchors near the face move with its edge, farther rings less, the image border not at all, so the background
stretches smoothly. The annotated points are carried through the
fitted surface (barycentric coordinates in the source view) so the fit error does not enter the new labels.
The model's grid mesh spans the lips, so an open mouth is closed by face triangles and moves with the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facekit.profiling.fit import FaceModel, Fit, Pose

RINGS = ((1.12, 0.9), (1.35, 0.55), (1.8, 0.2))  # (scale of the face outline about its centre, share of its motion)
RING_POINTS = 32
BORDER_POINTS = 9  # per image side


def yaw_rotation(degrees: float) -> np.ndarray:
    """Rotation about the camera's vertical axis; positive turns the nose to the image right."""
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def turned(pose: Pose, turn: np.ndarray) -> Pose:
    """The pose with the head rotated by `turn` (3, 3), a rotation in the camera frame about the model origin."""
    return Pose(pose.scale, turn @ pose.rotation, pose.translation)


@dataclass(frozen=True)
class Scene:
    """Everything a new view is drawn from: vertices (V, 3) in the source camera frame (mm; face vertices first),
    their source pixels (V, 2), per-vertex share of the head's motion (V,), face triangles (F, 3) and background
    triangles (B, 3) over the vertices."""
    camera_mm: np.ndarray
    source_px: np.ndarray
    motion: np.ndarray
    face_tri: np.ndarray
    background_tri: np.ndarray
    face_count: int


def build_scene(model: FaceModel, fit: Fit, image_hw: tuple[int, int]) -> Scene:
    pose = fit.pose
    keep = np.flatnonzero(model.valid)
    index = np.full(len(model.valid), -1)
    index[keep] = np.arange(len(keep))
    surface = (model.mean + model.basis @ fit.coef)[keep]
    face_mm = surface @ pose.rotation.T  # camera frame
    face_px = pose.project(surface)
    face_tri = index[model.tri]
    face_tri = face_tri[(face_tri >= 0).all(axis=1)]
    hull = cv2.convexHull(face_px.astype(np.float32), returnPoints=False).ravel()
    centre = face_px[hull].mean(axis=0)
    outline = _resample_closed(face_px[hull], RING_POINTS)
    anchors, motion = [], []
    nearest_depth = face_mm[hull][np.argmin(np.linalg.norm(face_px[hull][None] - outline[:, None], axis=2), axis=1),
                                  2]
    for scale, share in RINGS:
        anchors.append(centre + scale * (outline - centre))
        motion.append(np.full(RING_POINTS, share))
    height, width = image_hw
    t = np.linspace(0, 1, BORDER_POINTS)[:-1]
    zero = np.zeros_like(t)
    border = np.concatenate([np.stack([t * width, zero], 1), np.stack([width + zero, t * height], 1),
                             np.stack([width - t * width, height + zero], 1), np.stack([zero, height - t * height], 1)])
    anchors.append(border)
    motion.append(np.zeros(len(border)))
    anchors_px, motion = np.concatenate(anchors), np.concatenate(motion)
    depth = np.concatenate([np.tile(nearest_depth, len(RINGS)), np.zeros(len(border))])
    anchors_mm = np.stack([(anchors_px[:, 0] - pose.translation[0]) / pose.scale,
                           -(anchors_px[:, 1] - pose.translation[1]) / pose.scale, depth], axis=1)
    # background triangles: Delaunay over the face outline and the anchors, outside the outline only
    points = np.concatenate([face_px[hull], anchors_px])
    ids = np.concatenate([hull, len(face_px) + np.arange(len(anchors_px))])
    triangles = ids[Delaunay(points).simplices]
    polygon = face_px[hull].astype(np.float32).reshape(-1, 1, 2)
    all_px = np.concatenate([face_px, anchors_px])
    centroids = all_px[triangles].mean(axis=1)
    outside = np.array([cv2.pointPolygonTest(polygon, (float(x), float(y)), False) < 0 for x, y in centroids])
    return Scene(np.concatenate([face_mm, anchors_mm]), all_px, np.concatenate([np.ones(len(face_px)), motion]),
                 face_tri, triangles[outside], len(face_px))


def _resample_closed(polygon: np.ndarray, count: int) -> np.ndarray:
    """count points evenly spaced along a closed polygon (P, 2)."""
    closed = np.concatenate([polygon, polygon[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    at = np.concatenate([[0], np.cumsum(lengths)])
    wanted = np.linspace(0, at[-1], count, endpoint=False)
    return np.stack([np.interp(wanted, at, closed[:, k]) for k in range(2)], axis=1)


def view_positions(scene: Scene, pose: Pose, turn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new pixels (V, 2), new depths (V,)) of the scene's vertices with the head rotated by `turn` (3, 3, camera
    frame, e.g. yaw_rotation(30.0)); background anchors follow by their share of the motion."""
    rotated = scene.camera_mm @ turn.T
    moved = scene.camera_mm + scene.motion[:, None] * (rotated - scene.camera_mm)
    px = np.stack([pose.scale * moved[:, 0] + pose.translation[0], -pose.scale * moved[:, 1] + pose.translation[1]], 1)
    return px, moved[:, 2]


def render(image: np.ndarray, scene: Scene, new_px: np.ndarray, new_depth: np.ndarray) -> np.ndarray:
    """The photo re-rendered with every vertex moved from scene.source_px to new_px."""
    height, width = image.shape[:2]
    ids, triangles = triangle_ids(scene, new_px, new_depth, (height, width))
    ys, xs = np.nonzero(ids >= 0)
    tri = triangles[ids[ys, xs]]
    weights = barycentric(np.stack([xs + 0.5, ys + 0.5], 1), new_px[tri])
    source = np.einsum("nk,nkd->nd", weights, scene.source_px[tri]) - 0.5
    map_x, map_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x[ys, xs], map_y[ys, xs] = source[:, 0], source[:, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def triangle_ids(scene: Scene, new_px: np.ndarray, new_depth: np.ndarray, image_hw: tuple[int, int]):
    """(ids (H, W) int32, triangles (B + F, 3)): the triangle seen at each pixel of the new view, -1 for none;
    background triangles first, then face triangles far to near with back faces culled (painter's order)."""
    height, width = image_hw
    ids = np.full((height, width), -1, np.int32)
    triangles = np.concatenate([scene.background_tri, scene.face_tri])
    corners = new_px[scene.face_tri]
    area = ((corners[:, 1, 0] - corners[:, 0, 0]) * (corners[:, 2, 1] - corners[:, 0, 1])
            - (corners[:, 2, 0] - corners[:, 0, 0]) * (corners[:, 1, 1] - corners[:, 0, 1]))
    front = area < 0  # the model's triangles are clockwise on screen when they face the camera
    order = np.argsort(new_depth[scene.face_tri].mean(axis=1))
    draw = list(range(len(scene.background_tri))) + [len(scene.background_tri) + k for k in order if front[k]]
    shift = 4
    fixed = np.round(new_px * (1 << shift)).astype(np.int32)
    for k in draw:
        cv2.fillConvexPoly(ids, fixed[triangles[k]], int(k), cv2.LINE_8, shift)
    return ids, triangles


def barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N, 3) of points (N, 2) in triangles (N, 3, 2); degenerate triangles -> corner 0."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    det = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    safe = np.where(np.abs(det) < 1e-12, 1.0, det)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / safe
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / safe
    weights = np.stack([1 - w1 - w2, w1, w2], axis=1)
    weights[np.abs(det) < 1e-12] = [1.0, 0.0, 0.0]
    return weights


def carried_points(points_px: np.ndarray, scene: Scene, new_px: np.ndarray) -> np.ndarray:
    """Annotated points (K, 2) of the source view moved with the surface under them: the face triangle (facing the
    camera in the source view) that holds each point gives its barycentric coordinates; points outside the
    face move with their nearest face vertex."""
    corners = scene.source_px[scene.face_tri]
    out = np.empty_like(points_px, dtype=np.float64)
    for i, point in enumerate(np.asarray(points_px, np.float64)):
        weights = barycentric(np.repeat(point[None], len(corners), 0), corners)
        inside = np.flatnonzero((weights >= -1e-9).all(axis=1))
        if len(inside):
            # of the triangles holding the point, the nearest one to the camera
            depth = scene.camera_mm[scene.face_tri[inside], 2].mean(axis=1)
            k = inside[np.argmax(depth)]
            out[i] = weights[k] @ new_px[scene.face_tri[k]]
        else:
            nearest = np.argmin(np.linalg.norm(scene.source_px[:scene.face_count] - point, axis=1))
            out[i] = point + new_px[nearest] - scene.source_px[nearest]
    return out
