import glob

import numpy as np
import pytest
import scipy.io

from facekit.geometry import flip_points
from facekit.landmarks import FIVE, IBUG68, WFLW98, five_from_ibug68
from facekit.pose import REFERENCE_FACE_68, estimate_pose, euler_from_matrix, face_rotation, rotation_matrix
from facekit.records.synthetic import render_face
from tests.conftest import SHARED_DATA, requires_shared


def test_rotation_round_trip_and_axes():
    angles = np.array([0.3, -0.5, 0.2])
    np.testing.assert_allclose(euler_from_matrix(rotation_matrix(*angles)), angles)
    r = rotation_matrix(0.0, 0.0, np.pi / 2)  # positive roll: image-right goes down (clockwise on screen)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    nose = np.array([0.0, 0.0, -1.0])  # towards the camera
    assert (rotation_matrix(0.0, 0.3, 0.0) @ nose)[0] < 0  # positive yaw: nose to the image left
    assert (rotation_matrix(0.3, 0.0, 0.0) @ nose)[1] < 0  # positive pitch: nose up


def test_reference_face_is_mirror_symmetric():
    mirrored = REFERENCE_FACE_68[IBUG68.flip_permutation] * [-1, 1, 1]
    np.testing.assert_allclose(mirrored, REFERENCE_FACE_68, atol=1e-9)


def test_pose_is_recovered_from_synthetic_faces():
    errors = []
    for i in range(20):
        _, points, pose, _ = render_face(np.random.default_rng([3, i]))
        errors.append(np.degrees(estimate_pose(points, (450, 450), IBUG68) - pose))
    mean_abs = np.abs(np.array(errors)).mean(0)  # measured 4.7, 3.4, 1.2 deg (random identity and expression)
    assert (mean_abs < [6.0, 4.5, 2.0]).all(), mean_abs


def test_flip_keeps_pitch_and_negates_yaw_and_roll():
    _, points, pose, _ = render_face(np.random.default_rng([5, 1]))
    flipped = flip_points(points, 450, IBUG68.flip_permutation)
    a = estimate_pose(points, (450, 450), IBUG68)
    b = estimate_pose(flipped, (450, 450), IBUG68)
    np.testing.assert_allclose(b, a * [1, -1, -1], atol=1e-3)
    assert abs(pose[1]) > np.radians(5) and np.sign(a[1]) == np.sign(pose[1])


def test_five_point_and_wflw_pose_agree_with_68_point_pose():
    cam = REFERENCE_FACE_68 @ face_rotation(np.radians([10, 30, -8])).T + [0, 0, 600]
    points = cam[:, :2] / cam[:, 2:] * 450 + 225  # the pinhole camera estimate_pose assumes
    five = estimate_pose(five_from_ibug68(points), (450, 450), FIVE)
    wflw = np.zeros((98, 2))
    for i, j in enumerate(WFLW98.to_ibug68):
        if j is not None:
            wflw[i] = points[j]
    np.testing.assert_allclose(np.degrees(five), [10, 30, -8], atol=6)  # 5 points constrain pitch weakly
    np.testing.assert_allclose(np.degrees(estimate_pose(points, (450, 450), IBUG68)), [10, 30, -8], atol=1e-3)
    np.testing.assert_allclose(np.degrees(estimate_pose(wflw, (450, 450), WFLW98)), [10, 30, -8], atol=1e-3)


@requires_shared
def test_estimated_pose_matches_aflw2000_pose_para():
    errors = []
    for path in sorted(glob.glob(str(SHARED_DATA / "aflw2000_sample" / "*.mat"))):
        mat = scipy.io.loadmat(path)
        est = estimate_pose(mat["pt3d_68"][:2].T - 0.5, (450, 450), IBUG68)
        errors.append(np.degrees(est - mat["Pose_Para"][0, :3]))
    errors = np.abs(np.array(errors))
    assert len(errors) == 16
    assert errors.mean(0) == pytest.approx([5.4, 3.8, 1.7], abs=1.0)  # pitch, yaw, roll in degrees
