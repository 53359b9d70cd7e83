import cv2
import numpy as np
import pytest

from facekit.geometry import (
    crop_and_resize,
    crop_norm_to_points,
    flip_points,
    landmark_box_xyxy,
    pixel_centres_to_continuous,
    points_to_crop_norm,
    square_crop_box,
)
from facekit.landmarks import IBUG68


def test_pixel_centre_conventions():
    np.testing.assert_allclose(pixel_centres_to_continuous([[1.0, 1.0]], 1), [[0.5, 0.5]])
    np.testing.assert_allclose(pixel_centres_to_continuous([[0.0, 3.0]], 0), [[0.5, 3.5]])


def test_square_crop_box_golden():
    # landmark box 20 wide, 10 high, centre (20, 15); scale 1.4 -> side 28 -> origin (6, 1)
    np.testing.assert_array_equal(square_crop_box([10, 10, 30, 20], 1.4), [6, 1, 34, 29])
    # aligned to 4: side 28 -> 28, origin 6 -> 8 (round half to even), 1 -> 0
    box = square_crop_box([10, 10, 30, 20], 1.4, align=4)
    assert box[2] - box[0] == 28 and box[0] % 4 == 0 and box[1] % 4 == 0


def test_crop_norm_round_trip():
    pts = np.array([[10.25, 20.5], [33.0, 7.75]])
    box = np.array([5.0, 3.0, 45.0, 43.0])
    norm = points_to_crop_norm(pts, box)
    np.testing.assert_allclose(norm[0], [(10.25 - 5) / 40, (20.5 - 3) / 40])
    np.testing.assert_allclose(crop_norm_to_points(norm, box), pts)


def test_crop_and_resize_keeps_a_dot_on_its_point():
    """A bright 2x2 block centred on a continuous point stays centred on the mapped point after crop+resize."""
    img = np.zeros((200, 300, 3), np.uint8)
    img[120:122, 170:172] = 255  # centre (171, 121) in continuous coordinates
    box = np.array([101.0, 51.0, 201.0, 151.0])
    crop = crop_and_resize(img, box, 50)[..., 0].astype(float)
    ys, xs = np.mgrid[:50, :50] + 0.5
    centroid = [(crop * xs).sum() / crop.sum(), (crop * ys).sum() / crop.sum()]
    expected = points_to_crop_norm(np.array([[171.0, 121.0]]), box)[0] * 50
    np.testing.assert_allclose(centroid, expected, atol=0.05)


def test_crop_past_the_border_is_zero_padded():
    img = np.full((10, 10, 3), 200, np.uint8)
    crop = crop_and_resize(img, np.array([-10, -10, 10, 10]), 20)
    assert crop.shape == (20, 20, 3)
    assert crop[:10, :10].max() == 0 and crop[10:, 10:].min() == 200
    assert crop_and_resize(img, np.array([50, 50, 60, 60]), 4).max() == 0


def test_flip_points_twice_is_identity_and_matches_image_flip():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (68, 2))
    np.testing.assert_allclose(flip_points(flip_points(pts, 100, IBUG68.flip_permutation), 100,
                                           IBUG68.flip_permutation), pts)
    img = np.zeros((40, 60), np.uint8)
    img[10, 13] = 255  # pixel centre (13.5, 10.5)
    flipped = cv2.flip(img, 1)
    y, x = np.argwhere(flipped == 255)[0]
    perm = np.arange(1)
    assert flip_points(np.array([[13.5, 10.5]]), 60, perm)[0] == pytest.approx([x + 0.5, y + 0.5])


def test_landmark_box():
    np.testing.assert_array_equal(landmark_box_xyxy(np.array([[3, 9], [1, 4], [7, 5]])), [1, 4, 7, 9])
