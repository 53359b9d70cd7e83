import numpy as np
import pytest

from facekit.landmarks import FIVE, IBUG68, SCHEMES, WFLW98, LandmarkScheme, five_from_ibug68, get_scheme


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_flip_permutation_is_an_involution(scheme):
    perm = scheme.flip_permutation
    assert sorted(perm) == list(range(scheme.num_points))
    np.testing.assert_array_equal(perm[perm], np.arange(scheme.num_points))


def test_ibug68_permutation():
    perm = IBUG68.flip_permutation
    assert set(np.flatnonzero(perm == np.arange(68))) == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}
    assert perm[36] == 45 and perm[48] == 54
    assert [perm[i] for i in (0, 17, 31, 37, 39, 40, 60, 65)] == [16, 26, 35, 44, 42, 47, 64, 67]


def test_five_and_wflw98_permutations():
    assert FIVE.flip_permutation.tolist() == [1, 0, 2, 4, 3]
    perm = WFLW98.flip_permutation
    # pairs as published with WFLW: contour, both brow arcs, nostrils, eyes, mouth, pupils
    for a, b in [(0, 32), (15, 17), (33, 46), (38, 50), (41, 47), (55, 59), (60, 72), (61, 71), (64, 68),
                 (65, 75), (67, 73), (76, 82), (88, 92), (96, 97)]:
        assert perm[a] == b and perm[b] == a
    assert set(np.flatnonzero(perm == np.arange(98))) == {16, 51, 52, 53, 54, 57, 79, 85, 90, 94}


def test_wflw_to_ibug68_maps_each_68_point_once():
    mapped = [j for j in WFLW98.to_ibug68 if j is not None]
    assert sorted(mapped) == list(range(68))
    assert WFLW98.to_ibug68[60] == 36 and WFLW98.to_ibug68[72] == 45 and WFLW98.to_ibug68[32] == 16


def test_normalizing_distance_by_hand():
    pts = np.zeros((68, 2))
    pts[36] = [10, 20]
    pts[45] = [40, 60]  # 3-4-5 triangle: 50
    pts[36:42] += [[0, 0], [2, 0], [4, 0], [6, 0], [4, 0], [2, 0]]  # right eye centre x = 18/6 = 3 + 10
    assert IBUG68.normalizing_distance(pts, "inter_ocular") == pytest.approx(50.0)
    pupil_r = pts[36:42].mean(0)
    pupil_l = pts[42:48].mean(0)
    assert IBUG68.normalizing_distance(pts, "inter_pupil") == pytest.approx(np.linalg.norm(pupil_r - pupil_l))
    batch = np.stack([pts, pts * 2])
    np.testing.assert_allclose(IBUG68.normalizing_distance(batch), [50.0, 100.0])
    with pytest.raises(ValueError, match="no normalizer 'bbox'"):
        IBUG68.normalizing_distance(pts, "bbox")


def test_five_from_ibug68():
    pts = np.arange(136, dtype=float).reshape(68, 2)
    five = five_from_ibug68(pts)
    np.testing.assert_allclose(five[0], pts[36:42].mean(0))
    np.testing.assert_allclose(five[2:], pts[[30, 48, 54]])


def test_bad_schemes_are_rejected():
    with pytest.raises(ValueError, match="no mirror point 'right_ear'"):
        LandmarkScheme("x", ("left_ear", "nose"), {})
    with pytest.raises(ValueError, match="unknown landmark scheme 'ibug69'"):
        get_scheme("ibug69")
