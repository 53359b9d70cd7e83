"""A synthetic face dataset in the 300W-LP layout, so the pipeline runs with no download.

Each face is the reference 3D face (facekit.pose) with a random identity (proportions, per-point jitter) and
expression (mouth opening, smile, brow raise, eye opening), rotated by a random pose, projected with weak
perspective and drawn with OpenCV: hair, skin, eyes with irises, brows, nose, lips, on a cluttered background.
The landmarks are exactly the drawn features, so a CNN can learn them. Written like 300W-LP: SUBSET/NAME.jpg +
NAME.mat (`pt2d` (2, 68) 1-based, `Pose_Para` (1, 7), and the other 3DDFA keys with random values), mirrored
copies in SUBSET_Flip/, and landmarks/SUBSET/NAME_pts.mat with `pts_2d` and `pts_3d` (unflipped only).
"""
from __future__ import annotations

import functools
import os

import cv2
import numpy as np
import scipy.io

from facekit.geometry import flip_points
from facekit.landmarks import IBUG68
from facekit.pose import REFERENCE_FACE_68, face_rotation

SUBSETS = ("AFW", "HELEN", "LFPW", "IBUG")
_ARC = np.linspace(0, np.pi, 9)
# Forehead and hair outline (not landmarks): arcs above the brows, in the reference face's frame.
_FOREHEAD = np.stack([-70 * np.cos(_ARC), -30 - 45 * np.sin(_ARC), 40 - 35 * np.sin(_ARC)], axis=1)
_HAIR = np.stack([-84 * np.cos(_ARC), -20 - 75 * np.sin(_ARC), 45 - 30 * np.sin(_ARC)], axis=1)


def random_face_3d(rng: np.random.Generator) -> np.ndarray:
    """(68, 3) reference face with random proportions and expression."""
    pts = REFERENCE_FACE_68 * [rng.uniform(0.88, 1.12), rng.uniform(0.88, 1.12), rng.uniform(0.9, 1.1)]
    pts = pts + rng.normal(0, 1.2, pts.shape)
    mouth_open = rng.uniform(0, 20) if rng.random() < 0.5 else 0.0
    pts[[55, 56, 57, 58, 59, 65, 66, 67], 1] += mouth_open
    pts[[61, 62, 63], 1] -= 0.1 * mouth_open
    pts[5:12, 1] += mouth_open * np.array([0.15, 0.35, 0.5, 0.6, 0.5, 0.35, 0.15])
    smile = rng.uniform(-3, 7)
    pts[[48, 54, 60, 64], 1] -= smile
    pts[[48, 60], 0] -= 0.5 * smile
    pts[[54, 64], 0] += 0.5 * smile
    pts[17:27, 1] -= rng.uniform(-3, 7)
    for eye in (range(36, 42), range(42, 48)):
        eye = list(eye)
        centre = pts[eye, 1].mean()
        pts[eye, 1] = centre + (pts[eye, 1] - centre) * rng.uniform(0.3, 1.4)
    return pts


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    ramp = np.linspace(0, 1, size)[:, None, None]
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = (c0 + (c1 - c0) * (ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2))).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(img, (size, size, 3)))
    for _ in range(rng.integers(4, 14)):
        color = tuple(int(v) for v in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.uniform(0, size, 2))
        r = int(rng.uniform(10, size / 4))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, color, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r), color, -1)
    return img


def project_face(x3d: np.ndarray, rotation: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
    """Reference-face points (N, 3) -> image points (N, 2): rotated about the face centre, weak perspective."""
    return (x3d - [0, 45, 0]) @ rotation.T[:, :2] * scale + centre


def render_face(rng: np.random.Generator, size: int = 450) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Draw one random face. Returns (BGR image (size, size, 3), points_px (68, 2) continuous, pose_rad (3,),
    projection scale in pixels per reference unit)."""
    face = random_face_3d(rng)
    while True:
        pose = np.radians([rng.uniform(-25, 25), rng.uniform(-60, 60), rng.uniform(-25, 25)])
        scale = rng.uniform(0.8, 1.5) * size / 450
        centre = size / 2 + rng.uniform(-50, 50, 2) * size / 450
        project = functools.partial(project_face, rotation=face_rotation(pose), scale=scale, centre=centre)
        points = project(face)
        if points.min() > 2 and points.max() < size - 2:
            break
    img = _background(rng, size)
    skin = rng.uniform([60, 70, 90], [200, 210, 250])
    hair = rng.uniform(0, 90, 3)
    cv2.fillConvexPoly(img, cv2.convexHull(project(_HAIR).astype(np.int32)), hair.tolist(), cv2.LINE_AA)
    outline = np.concatenate([points, project(_FOREHEAD)]).astype(np.int32)  # nose may pass the cheek
    cv2.fillConvexPoly(img, cv2.convexHull(outline), skin.tolist(), cv2.LINE_AA)
    shade = skin * 0.6
    lw = max(1, int(round(4 * scale)))

    def poly(idx, color, closed=False, fill=False, width=lw):
        p = points[list(idx)].astype(np.int32)
        if fill:
            cv2.fillPoly(img, [p], color, cv2.LINE_AA)
        else:
            cv2.polylines(img, [p], closed, color, width, cv2.LINE_AA)

    brow = (hair * 0.8).tolist()
    poly(range(17, 22), brow, width=max(2, int(6 * scale)))
    poly(range(22, 27), brow, width=max(2, int(6 * scale)))
    iris = rng.uniform(20, 120, 3).tolist()
    for eye in (range(36, 42), range(42, 48)):
        poly(eye, (235, 240, 245), fill=True)
        outline_px = points[list(eye)].astype(np.int32)
        x, y, w, h = cv2.boundingRect(outline_px)
        mask = np.zeros((h, w), np.uint8)  # the iris is the disc clipped to the eye, drawn in the eye's box
        cv2.fillPoly(mask, [outline_px - [x, y]], 255)
        disc = np.zeros_like(mask)
        c = points[list(eye)].mean(0) - [x, y]
        eye_w = np.linalg.norm(points[eye[0]] - points[eye[3]])
        cv2.circle(disc, (int(c[0]), int(c[1])), max(1, int(eye_w * 0.25)), 255, -1)
        img[y:y + h, x:x + w][(mask > 0) & (disc > 0)] = iris
        poly(eye, (30, 30, 30), closed=True, width=max(1, lw // 2))
    poly(range(27, 31), shade.tolist(), width=max(1, lw // 2))
    poly(range(31, 36), (shade * 0.8).tolist())
    lips = rng.uniform([60, 40, 120], [120, 100, 210]).tolist()
    poly(range(48, 60), lips, fill=True)
    poly(range(60, 68), (40, 30, 60), fill=True)
    poly(list(range(60, 65)), (lips[0] * 0.6, lips[1] * 0.6, lips[2] * 0.6), width=max(1, lw // 2))
    light = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(1.0, 1.3), size, dtype=np.float32)
    light = light[None, :, None] if rng.random() < 0.5 else light[:, None, None]
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5)).astype(np.float32) * light
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(1, 6)
    img = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return img, points, pose, scale


def _mat_payload(rng, points_px, pose, scale, size) -> dict:
    """The keys of a 300W-LP .mat; pt2d is 1-based like Matlab."""
    return {"pt2d": (points_px + 0.5).T, "Pose_Para": np.r_[pose, size / 2, size / 2, 0.0, scale][None],
            "roi": np.r_[points_px.min(0), points_px.max(0)][None], "Shape_Para": rng.normal(0, 1e5, (199, 1)),
            "Exp_Para": rng.normal(0, 1, (29, 1)), "Illum_Para": rng.normal(0, 1, (1, 10)),
            "Color_Para": rng.normal(0, 1, (1, 7)), "Tex_Para": rng.normal(0, 1, (199, 1))}


def _write(root, subset, name, img, points_px, pose, scale, rng, quality):
    os.makedirs(os.path.join(root, subset), exist_ok=True)
    cv2.imwrite(os.path.join(root, subset, name + ".jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    scipy.io.savemat(os.path.join(root, subset, name + ".mat"), _mat_payload(rng, points_px, pose, scale,
                                                                             img.shape[0]))
    if subset.endswith("_Flip"):
        return  # like 300W-LP, landmarks/ covers the unflipped images only
    os.makedirs(os.path.join(root, "landmarks", subset), exist_ok=True)
    one_based = points_px + 0.5
    scipy.io.savemat(os.path.join(root, "landmarks", subset, name + "_pts.mat"),
                     {"pts_2d": one_based, "pts_3d": one_based})


def face_name(index: int) -> tuple[str, str]:
    """(subset, file stem) of the index-th synthetic face; LFPW alternates train and test names like 300W-LP."""
    subset = SUBSETS[index % len(SUBSETS)]
    if subset == "LFPW":
        return subset, f"LFPW_image_{'test' if index // 4 % 2 else 'train'}_{index:05d}_0"
    return subset, f"{subset}_synth_{index:05d}_0"


def write_synthetic_300wlp(root: str, count: int, seed: int = 0, size: int = 450, flip_every: int = 4,
                           quality: int = 92) -> int:
    """Write `count` faces (plus a mirrored copy of every flip_every-th in SUBSET_Flip/) under root.

    Face i depends only on (seed, i), so the dataset is reproducible. Returns the number of images written.
    """
    written = 0
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        img, points, pose, scale = render_face(rng, size)
        subset, name = face_name(i)
        _write(root, subset, name, img, points, pose, scale, rng, quality)
        written += 1
        if flip_every and i % flip_every == 0:
            flipped = flip_points(points, size, IBUG68.flip_permutation)
            _write(root, subset + "_Flip", name, img[:, ::-1], flipped, pose * [1, -1, -1], scale, rng, quality)
            written += 1
    return written


def write_synthetic_scenes(root: str, count: int, seed: int = 0, size_hw: tuple[int, int] = (240, 320),
                           faces: tuple[int, int] = (1, 4), face_sides: tuple[float, float] = (28.0, 110.0)) -> int:
    """Multi-face scenes for detectors, in RetinaFace's layout: root/images/NAME.jpg and root/label.txt
    (`# NAME.jpg`, then per face `x y w h` and five `x y 0.0` triples and `1.0`). Each face is a drawn face (as
    above) pasted at a random size without overlap; its box follows facekit.landmarks.face_box_xyxy and its five
    points facekit.landmarks.five_from_ibug68. Returns the number of faces."""
    from facekit.landmarks import face_box_xyxy, five_from_ibug68
    from facekit.records.datasets.wider import retinaface_label_line

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    lines, total = [], 0
    height, width = size_hw
    for index in range(count):
        scene = _background(rng, max(size_hw))[:height, :width].copy()
        name = f"scene_{index:05d}.jpg"
        lines.append(f"# {name}")
        placed: list[np.ndarray] = []
        for _ in range(rng.integers(faces[0], faces[1] + 1)):
            img, points, _, _ = render_face(rng, 128)
            box = face_box_xyxy(points, IBUG68)
            side = rng.uniform(*face_sides)
            scale = side / max(box[2] - box[0], box[3] - box[1])
            patch = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            ph, pw = patch.shape[:2]
            if ph >= height or pw >= width:
                continue
            x, y = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
            face = box * scale + [x, y, x, y]
            if any(_overlap(face, other) for other in placed):
                continue
            scene[y:y + ph, x:x + pw] = patch
            placed.append(face)
            marks = five_from_ibug68(points * scale + [x, y])
            lines.append(retinaface_label_line(face, marks))
        total += len(placed)
        cv2.imwrite(os.path.join(root, "images", name), scene, [cv2.IMWRITE_JPEG_QUALITY, 92])
    with open(os.path.join(root, "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return total


def _overlap(a: np.ndarray, b: np.ndarray, margin: float = 4.0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])
