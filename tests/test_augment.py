import math

import numpy as np
import pytest
import tensorflow as tf

from facekit.alignment.augment import augment, flip_horizontal, similarity_matrix, transform_points, warp_image
from facekit.config import AugmentConfig
from facekit.landmarks import IBUG68

PERM = tf.constant(IBUG68.flip_permutation)
NO_AUGMENT = AugmentConfig(flip=False, rotation_deg=0.0, scale=(1.0, 1.0), translate=0.0, color_jitter=False,
                           grey=0.0, blur=0.0, occlusion=0.0)


def dot_image(size, x, y):
    """A black float image with one white pixel at integer pixel (x, y): its continuous centre is (x+.5, y+.5)."""
    image = np.zeros((size, size, 3), np.float32)
    image[y, x] = 255.0
    return tf.constant(image)


def bright_centre(image):
    """Intensity-weighted centre of an image in continuous coordinates."""
    weights = np.asarray(image).sum(axis=-1)
    ys, xs = np.mgrid[:weights.shape[0], :weights.shape[1]] + 0.5
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


def test_flip_twice_is_identity_and_swaps_eyes():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (16, 16, 3)).astype(np.float32))
    points = tf.constant(rng.uniform(0, 1, (68, 2)).astype(np.float32))
    pose = tf.constant([0.1, 0.2, 0.3])
    once = flip_horizontal(image, points, pose, PERM)
    np.testing.assert_allclose(once[1][45], [1 - points[36, 0], points[36, 1]], atol=1e-6)
    np.testing.assert_allclose(once[2], [0.1, -0.2, -0.3])
    twice = flip_horizontal(*once, PERM)
    for a, b in zip(twice, (image, points, pose)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_flip_keeps_a_dot_on_its_point():
    image = dot_image(20, 3, 7)
    points = tf.constant([[3.5 / 20, 7.5 / 20]] * 68, tf.float32)
    flipped, moved, _ = flip_horizontal(image, points, tf.zeros(3), PERM)
    np.testing.assert_allclose(bright_centre(flipped) / 20, moved[0], atol=1e-6)


@pytest.mark.parametrize("angle_deg,scale,shift", [(30, 1.0, (0, 0)), (-25, 1.1, (0.05, -0.03)), (90, 0.9, (0, 0))])
def test_warp_moves_a_dot_where_its_point_goes(angle_deg, scale, shift):
    size = 64
    image = dot_image(size, 40, 20)
    matrix = similarity_matrix(tf.constant(math.radians(angle_deg)), tf.constant(scale), tf.constant(shift, tf.float32))
    warped = warp_image(image, matrix)
    point = transform_points(tf.constant([[40.5 / size, 20.5 / size]]), matrix)[0] * size
    # bilinear resampling of a one-pixel dot biases its centroid by < 0.1 px; a half-pixel slip would be 0.5
    np.testing.assert_allclose(bright_centre(warped), point, atol=0.1)


def test_identity_config_changes_nothing_and_seeds_repeat():
    rng = np.random.default_rng(1)
    image = tf.constant(rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    points = tf.constant(rng.uniform(0, 1, (68, 2)).astype(np.float32))
    out = augment(image, points, tf.zeros(3), tf.constant([1, 2]), NO_AUGMENT, PERM)
    np.testing.assert_allclose(out[0], image, atol=1e-3)
    np.testing.assert_allclose(out[1], points, atol=1e-6)
    full = AugmentConfig(grey=0.5, blur=0.5, occlusion=0.5)
    a = augment(image, points, tf.zeros(3), tf.constant([3, 4]), full, PERM)
    b = augment(image, points, tf.zeros(3), tf.constant([3, 4]), full, PERM)
    c = augment(image, points, tf.zeros(3), tf.constant([5, 6]), full, PERM)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[1], c[1])


def test_rotation_adds_to_roll():
    config = AugmentConfig(flip=False, rotation_deg=30.0, scale=(1.0, 1.0), translate=0.0, color_jitter=False,
                           grey=0.0, blur=0.0, occlusion=0.0)
    image = dot_image(32, 20, 10)
    points = tf.constant([[20.5 / 32, 10.5 / 32]] * 68, tf.float32)
    out_image, out_points, pose = augment(image, points, tf.constant([0.0, 0.0, 0.1]), tf.constant([7, 8]), config,
                                          PERM)
    centred = np.asarray(out_points[0]) - 0.5
    before = np.array([20.5 / 32, 10.5 / 32]) - 0.5
    angle = math.atan2(centred[1], centred[0]) - math.atan2(before[1], before[0])
    assert float(pose[2]) - 0.1 == pytest.approx(angle, abs=1e-5)
    np.testing.assert_allclose(bright_centre(out_image) / 32, out_points[0], atol=0.01)
