"""Landmark schemes: named points, the derived horizontal-flip permutation and NME normalisers.

Names are from the subject's point of view: "right_eye_outer" is the subject's right eye, which appears on
the image's left in a frontal photo. A horizontal flip swaps every "right" with "left"; points whose name has
neither side are fixed points. The flip permutation is derived from the names, never written by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark layout.

    name: registry key ("ibug68", "wflw98", "five").
    point_names: one unique name per point, in annotation order.
    normalizers: NME normaliser name -> (indices A, indices B); the normalising distance is
        |mean(points[A]) - mean(points[B])|.
    face_scale: side of the face box divided by the larger side of the landmark bounding box; 1 for schemes
        whose points span the face (jaw included), larger for sparse schemes such as five points.
    to_ibug68: for each point, the index of the same anatomical point in ibug68, or None (used for pose).
    """

    name: str
    point_names: tuple[str, ...]
    normalizers: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    face_scale: float = 1.0
    to_ibug68: tuple[int | None, ...] | None = None
    flip_permutation: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(set(self.point_names)) != len(self.point_names):
            raise ValueError(f"scheme {self.name}: point names are not unique")
        object.__setattr__(self, "flip_permutation", _flip_permutation(self.point_names))

    @property
    def num_points(self) -> int:
        return len(self.point_names)

    def normalizing_distance(self, points: np.ndarray, normalizer: str = "inter_ocular") -> np.ndarray:
        """points (..., K, 2) -> distance (...,) used to normalise NME."""
        if normalizer not in self.normalizers:
            raise ValueError(f"scheme {self.name} has no normalizer {normalizer!r}; "
                             f"choose from {sorted(self.normalizers)}")
        a, b = self.normalizers[normalizer]
        pa = points[..., list(a), :].mean(axis=-2)
        pb = points[..., list(b), :].mean(axis=-2)
        return np.linalg.norm(pa - pb, axis=-1)


def _mirror_name(name: str) -> str:
    return re.sub(r"\b(left|right)\b",
                  lambda m: "right" if m.group(1) == "left" else "left", name.replace("_", " ")).replace(" ", "_")


def _flip_permutation(names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        mirrored = _mirror_name(n)
        if mirrored not in index:
            raise ValueError(f"point {n!r} has no mirror point {mirrored!r}")
        perm.append(index[mirrored])
    return np.asarray(perm, dtype=np.int64)


# Face regions by point name: a point belongs to the first region one of whose words its name contains; every
# point of every scheme falls in one (point_regions raises otherwise).
REGIONS = (("jaw", ("jaw", "chin")), ("brows", ("brow",)), ("nose", ("nose", "nostril")),
           ("eyes", ("eye", "pupil")), ("mouth", ("mouth", "lip")))


def point_regions(point_names) -> dict[str, list[int]]:
    """Region name -> indices of the scheme's points in it (regions the scheme lacks are left out)."""
    regions: dict[str, list[int]] = {}
    for index, name in enumerate(point_names):
        region = next((r for r, words in REGIONS if any(w in name for w in words)), None)
        if region is None:
            raise ValueError(f"point {name!r} belongs to no face region")
        regions.setdefault(region, []).append(index)
    return {r: regions[r] for r, _ in REGIONS if r in regions}


def _sided(side: str, parts: list[str]) -> list[str]:
    return [f"{side}_{p}" for p in parts]


def _ibug68_names() -> tuple[str, ...]:
    jaw = _sided("right", [f"jaw_{i}" for i in range(1, 9)]) + ["chin"] + \
        _sided("left", [f"jaw_{i}" for i in range(8, 0, -1)])
    brows = _sided("right", [f"brow_{i}" for i in range(1, 6)]) + \
        _sided("left", [f"brow_{i}" for i in range(5, 0, -1)])
    nose = [f"nose_bridge_{i}" for i in range(1, 5)] + [
        "right_nostril_outer", "right_nostril_inner", "nose_bottom", "left_nostril_inner", "left_nostril_outer"]
    right_eye = _sided("right", ["eye_outer", "eye_upper_outer", "eye_upper_inner", "eye_inner",
                                 "eye_lower_inner", "eye_lower_outer"])
    left_eye = _sided("left", ["eye_inner", "eye_upper_inner", "eye_upper_outer", "eye_outer",
                               "eye_lower_outer", "eye_lower_inner"])
    outer_mouth = ["right_mouth_corner", "right_upper_lip_outer", "right_upper_lip_inner", "upper_lip_top",
                   "left_upper_lip_inner", "left_upper_lip_outer", "left_mouth_corner", "left_lower_lip_outer",
                   "left_lower_lip_inner", "lower_lip_bottom", "right_lower_lip_inner", "right_lower_lip_outer"]
    inner_mouth = ["right_inner_mouth_corner", "right_inner_upper_lip", "inner_upper_lip_center",
                   "left_inner_upper_lip", "left_inner_mouth_corner", "left_inner_lower_lip",
                   "inner_lower_lip_center", "right_inner_lower_lip"]
    return tuple(jaw + brows + nose + right_eye + left_eye + outer_mouth + inner_mouth)


def _wflw98_names() -> tuple[str, ...]:
    jaw = _sided("right", [f"jaw_{i}" for i in range(1, 17)]) + ["chin"] + \
        _sided("left", [f"jaw_{i}" for i in range(16, 0, -1)])
    right_brow = _sided("right", [f"brow_upper_{i}" for i in range(1, 6)] +
                        [f"brow_lower_{i}" for i in range(4, 0, -1)])
    left_brow = _sided("left", [f"brow_upper_{i}" for i in range(5, 0, -1)] +
                       [f"brow_lower_{i}" for i in range(1, 5)])
    nose = [f"nose_bridge_{i}" for i in range(1, 5)] + [
        "right_nostril_outer", "right_nostril_inner", "nose_bottom", "left_nostril_inner", "left_nostril_outer"]
    right_eye = _sided("right", ["eye_outer", "eye_upper_1", "eye_upper_2", "eye_upper_3", "eye_inner",
                                 "eye_lower_3", "eye_lower_2", "eye_lower_1"])
    left_eye = _sided("left", ["eye_inner", "eye_upper_3", "eye_upper_2", "eye_upper_1", "eye_outer",
                               "eye_lower_1", "eye_lower_2", "eye_lower_3"])
    mouth = list(_ibug68_names()[48:68])
    return tuple(jaw + right_brow + left_brow + nose + right_eye + left_eye + mouth +
                 ["right_pupil", "left_pupil"])


# WFLW point -> iBUG 68 point (contour every other point, the eyes' 6 of 8 points, brows' upper arcs).
_WFLW_TO_IBUG = {**{2 * i: i for i in range(17)}, **{33 + i: 17 + i for i in range(5)},
                 **{42 + i: 22 + i for i in range(5)}, **{51 + i: 27 + i for i in range(9)},
                 60: 36, 61: 37, 63: 38, 64: 39, 65: 40, 67: 41, 68: 42, 69: 43, 71: 44, 72: 45, 73: 46, 75: 47,
                 **{76 + i: 48 + i for i in range(20)}}

IBUG68 = LandmarkScheme(
    name="ibug68",
    point_names=_ibug68_names(),
    normalizers={"inter_ocular": ((36,), (45,)),
                 "inter_pupil": (tuple(range(36, 42)), tuple(range(42, 48)))},
    to_ibug68=tuple(range(68)),
)

WFLW98 = LandmarkScheme(
    name="wflw98",
    point_names=_wflw98_names(),
    normalizers={"inter_ocular": ((60,), (72,)), "inter_pupil": ((96,), (97,))},
    to_ibug68=tuple(_WFLW_TO_IBUG.get(i) for i in range(98)),
)

# Five points, image-left first in a frontal face: eye centres, nose tip, mouth corners (MTFL, RetinaFace).
# face_scale: the iBUG68 landmark box is this many times the five points' box (median 2.04, 10-90% 1.84-2.27,
# measured on the 1,207 HELEN-train and AFW faces), so a five-point crop frames the face like a 68-point crop.
FIVE = LandmarkScheme(
    name="five",
    point_names=("right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner"),
    normalizers={"inter_ocular": ((0,), (1,)), "inter_pupil": ((0,), (1,))},
    face_scale=2.0,
    to_ibug68=None,
)

SCHEMES = {s.name: s for s in (IBUG68, WFLW98, FIVE)}


def get_scheme(name: str) -> LandmarkScheme:
    if name not in SCHEMES:
        raise ValueError(f"unknown landmark scheme {name!r}; choose from {sorted(SCHEMES)}")
    return SCHEMES[name]


def five_from_ibug68(points: np.ndarray) -> np.ndarray:
    """points (..., 68, 2) -> (..., 5, 2): eye centres, nose tip (30), mouth corners (48, 54)."""
    return np.stack([points[..., 36:42, :].mean(-2), points[..., 42:48, :].mean(-2),
                     points[..., 30, :], points[..., 48, :], points[..., 54, :]], axis=-2)


# Five-point face box: centre of the points' bounding box + these multiples of its diagonal (x0, y0, x1, y1),
# fitted (median) on the 870 HELEN-train faces to the 68-point rule below: median IoU 0.815, minimum 0.55.
FIVE_POINT_BOX = (-0.725, -0.902, 0.725, 0.818)
FOREHEAD_RAISE = 0.2  # the 68-point box's top is raised by this fraction of the landmarks' height


def face_box_xyxy(points_px: np.ndarray, scheme: LandmarkScheme) -> np.ndarray:
    """A detection box (4,) xyxy from one face's landmarks (K, 2), by the rule the AFW detection boxes follow:
    the landmarks' extent with its top raised by 20% of its height (dense schemes, jaw included); five points
    map to the same box through FIVE_POINT_BOX."""
    points = np.asarray(points_px, np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    if scheme.name == "five":
        centre, diagonal = (low + high) / 2, float(np.hypot(*(high - low)))
        return np.concatenate([centre, centre]) + np.asarray(FIVE_POINT_BOX) * diagonal
    return np.array([low[0], low[1] - FOREHEAD_RAISE * (high[1] - low[1]), high[0], high[1]])


def extent_from_face_box(box_xyxy: np.ndarray) -> np.ndarray:
    """The inverse of face_box_xyxy's dense rule: the landmarks' extent (4,) that a face box (4,) stands for
    (its top lowered by the forehead raise), i.e. the box a landmark model's crop is centred on."""
    x0, y0, x1, y1 = np.asarray(box_xyxy, np.float64)
    return np.array([x0, y0 + (y1 - y0) * FOREHEAD_RAISE / (1 + FOREHEAD_RAISE), x1, y1])


def five_points(points_px: np.ndarray, scheme: LandmarkScheme) -> np.ndarray:
    """(K, 2) landmarks of a scheme -> (5, 2) in the five-point order (NaN when the scheme cannot give them)."""
    if scheme.name == "five":
        return np.asarray(points_px, np.float64)
    if scheme.name == "ibug68":
        return five_from_ibug68(np.asarray(points_px, np.float64))
    if scheme.name == "wflw98":  # pupils, nose tip, mouth corners
        return np.asarray(points_px, np.float64)[[96, 97, 54, 76, 82]]
    raise ValueError(f"scheme {scheme.name} has no five-point mapping")
