"""Landmark-consistent augmentation in TF ops, for tf.data `map`. Randomness is stateless: each call takes a
(2,) int seed, so a seeded pipeline is repeatable whatever its parallelism.

Geometry follows facekit.geometry's convention: a pixel i covers [i, i + 1), and crop-normalised points are
continuous coordinates divided by the crop side. One similarity transform (flip, rotation, scale, shift about
the crop centre) moves image and points together.
"""
from __future__ import annotations

import math

import tensorflow as tf

from facekit.config import AugmentConfig


def _uniform(seed, low, high, shape=()):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def flip_horizontal(image, points_norm, pose_rad, flip_permutation):
    """Mirror an (S, S, C) image, its (K, 2) points (x -> 1 - x, left and right indices swapped) and its pose
    (pitch kept, yaw and roll negated)."""
    flipped = tf.gather(points_norm, flip_permutation) * tf.constant([-1.0, 1.0]) + tf.constant([1.0, 0.0])
    return tf.image.flip_left_right(image), flipped, pose_rad * tf.constant([1.0, -1.0, -1.0])


def similarity_matrix(angle_rad, scale, shift_norm):
    """Forward map of crop-normalised points: p -> 0.5 + scale * R(angle) (p - 0.5) + shift. Returns (3, 3)."""
    cos, sin = tf.cos(angle_rad) * scale, tf.sin(angle_rad) * scale
    linear = tf.stack([[cos, -sin], [sin, cos]])
    offset = tf.constant([0.5, 0.5]) - tf.linalg.matvec(linear, tf.constant([0.5, 0.5])) + shift_norm
    top = tf.concat([linear, offset[:, None]], axis=1)
    return tf.concat([top, tf.constant([[0.0, 0.0, 1.0]])], axis=0)


def warp_image(image, matrix_norm, fill_value: float = 0.0):
    """Warp an (S, S, C) float image by a forward normalised-coordinate matrix (3, 3), bilinear, constant fill.

    ImageProjectiveTransform maps output pixel indices to input indices, with pixel centres on integers; a
    continuous point is index + 0.5, so the inverse map is conjugated by that half-pixel shift.
    """
    size = tf.cast(tf.shape(image)[0], tf.float32)
    to_pixels = tf.stack([[size, 0.0, -0.5], [0.0, size, -0.5], [0.0, 0.0, 1.0]])   # index = norm * S - 0.5
    inverse = to_pixels @ tf.linalg.inv(matrix_norm) @ tf.linalg.inv(to_pixels)
    transform = tf.reshape(inverse, [9])[:8] / inverse[2, 2]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=fill_value, interpolation="BILINEAR", fill_mode="CONSTANT")
    return warped[0]


def transform_points(points_norm, matrix_norm):
    """(K, 2) points through a (3, 3) forward matrix."""
    return points_norm @ tf.transpose(matrix_norm[:2, :2]) + matrix_norm[:2, 2]


def gaussian_blur(image, sigma, radius: int = 2):
    """(S, S, 3) float image blurred by a separable Gaussian of the given sigma (kernel 2 * radius + 1)."""
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = image.shape[-1]
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(image[None], horizontal, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(out, vertical, [1, 1, 1, 1], "SAME")[0]


def occlude(image, seed, min_frac: float = 0.1, max_frac: float = 0.4):
    """Fill one random axis-aligned rectangle (sides min_frac..max_frac of the crop) with a random colour."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    size = tf.cast(tf.shape(image)[0], tf.float32)
    wh = _uniform(seeds[0], min_frac, max_frac, [2]) * size
    corner = _uniform(seeds[1], 0.0, 1.0, [2]) * (size - wh)
    grid = tf.range(size) + 0.5
    inside_x = (grid >= corner[0]) & (grid < corner[0] + wh[0])
    inside_y = (grid >= corner[1]) & (grid < corner[1] + wh[1])
    mask = tf.cast(inside_y[:, None] & inside_x[None, :], tf.float32)[..., None]
    colour = _uniform(seeds[2], 0.0, 255.0, [3])
    return image * (1.0 - mask) + colour * mask


def augment(image, points_norm, pose_rad, seed, config: AugmentConfig, flip_permutation):
    """image (S, S, 3) float32 in [0, 255], points_norm (K, 2), pose_rad (3,), seed (2,) -> the same, augmented.

    A rotation by +angle (clockwise on screen, y pointing down) adds angle to the roll (checked with
    facekit.pose.estimate_pose on real faces).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 12)
    if config.flip:
        image, points_norm, pose_rad = tf.cond(
            _uniform(seeds[0], 0.0, 1.0) < 0.5, lambda: flip_horizontal(image, points_norm, pose_rad, flip_permutation),
            lambda: (image, points_norm, pose_rad))
    angle = _uniform(seeds[1], -1.0, 1.0) * math.radians(config.rotation_deg)
    scale = _uniform(seeds[2], config.scale[0], config.scale[1])
    shift = _uniform(seeds[3], -config.translate, config.translate, [2])
    matrix = similarity_matrix(angle, scale, shift)
    image = warp_image(image, matrix)
    points_norm = transform_points(points_norm, matrix)
    pose_rad = pose_rad + tf.stack([0.0, 0.0, angle])

    image = image / 255.0
    if config.color_jitter:
        image = tf.image.stateless_random_brightness(image, 0.15, seeds[4])
        image = tf.image.stateless_random_contrast(image, 0.7, 1.3, seeds[5])
        image = tf.image.stateless_random_saturation(tf.clip_by_value(image, 0.0, 1.0), 0.7, 1.3, seeds[6])
        image = tf.image.stateless_random_hue(image, 0.04, seeds[7])
    if config.grey:
        grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
        image = tf.where(_uniform(seeds[8], 0.0, 1.0) < config.grey, grey, image)
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    if config.blur:
        image = tf.cond(_uniform(seeds[9], 0.0, 1.0) < config.blur,
                        lambda: gaussian_blur(image, _uniform(seeds[10], 0.5, 1.5)), lambda: image)
    if config.occlusion:
        image = tf.cond(_uniform(seeds[11], 0.0, 1.0) < config.occlusion,
                        lambda: occlude(image, seeds[11]), lambda: image)
    return image, points_norm, pose_rad
