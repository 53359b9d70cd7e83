import math

import numpy as np
import pytest
import tensorflow as tf

from facekit import losses
from facekit.codecs import make_codec
from facekit.config import LossConfig


def diff_of(*pairs):
    """One sample whose per-point (dx, dy) are given -> (1, K, 2)."""
    return tf.constant([pairs], tf.float32)


def test_regression_losses_by_hand():
    d = diff_of((3.0, 4.0), (0.5, 0.0))
    assert float(losses.l2_loss(d)) == pytest.approx(9 + 16 + 0.25)
    assert float(losses.l1_loss(d)) == pytest.approx(7.5)
    assert float(losses.smooth_l1_loss(d, beta=1.0)) == pytest.approx(2.5 + 3.5 + 0.125)
    # Wing, w=10, eps=2: |x| < 10 -> 10 ln(1 + |x| / 2); |x| >= 10 -> |x| - (10 - 10 ln 6)
    wing = losses.wing_loss(diff_of((3.0, 12.0)), 10.0, 2.0)
    assert float(wing) == pytest.approx(10 * math.log(2.5) + 12 - (10 - 10 * math.log(6)), rel=1e-5)


def test_losses_average_over_the_batch():
    d = tf.constant([[[1.0, 0.0]], [[3.0, 0.0]]])
    assert float(losses.l2_loss(d)) == pytest.approx(5.0)


def test_pfld_loss_by_hand():
    diff = tf.constant([[[1.0, 1.0]], [[2.0, 0.0]]])          # squared distances 2 and 4
    pose_true = tf.zeros((2, 3))
    pose_pred = tf.constant([[math.pi / 2, 0, 0], [0, 0, 0]])  # 1 - cos: 1 for the first sample, 0 for the second
    balance = tf.constant([1.0, 3.0])
    # paper (offset 0): (1 * 1 * 2 + 0 * 3 * 4) / 2
    assert float(losses.pfld_loss(diff, pose_pred, pose_true, balance, 0.0)) == pytest.approx(1.0)
    # offset 1 keeps the exact-pose sample: (2 * 1 * 2 + 1 * 3 * 4) / 2
    assert float(losses.pfld_loss(diff, pose_pred, pose_true, balance, 1.0)) == pytest.approx(8.0)
    # l1 distances 2 and 2: (2 * 1 * 2 + 1 * 3 * 2) / 2
    assert float(losses.pfld_loss(diff, pose_pred, pose_true, balance, 1.0, "l1")) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="pfld distance 'l3'"):
        losses.pfld_loss(diff, pose_pred, pose_true, balance, 1.0, "l3")


def test_balance_weights_by_hand_and_plain_samples_are_positive():
    unknown = [-1] * 6
    attributes = np.array([unknown, unknown, unknown, [0, 1, 0, 0, 0, 0]])
    pose = np.radians([[0, 45, 0], [0, 10, 0], [0, -5, 0], [0, 0, 0]]).astype(np.float32)
    table = losses.balance_table(attributes, pose)
    # classes: sample 0 large pose (1 of 4), sample 3 expression (1 of 4), samples 1 and 2 plain (2 of 4)
    raw = np.array([4.0, 2.0, 2.0, 4.0])
    expected = raw / raw.mean()
    weights = losses.balance_weight(attributes, pose, table).numpy()
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert (weights > 0).all() and weights.mean() == pytest.approx(1.0)


def test_balance_weights_cap_rare_classes():
    attributes = np.full((100, 6), -1)
    pose = np.zeros((100, 3), np.float32)
    pose[0, 1] = np.radians(50.0)                      # 1 large-yaw face among 100: inverse frequency 100
    weights = losses.balance_weight(attributes, pose, losses.balance_table(attributes, pose, cap=10.0)).numpy()
    plain = 100 / 99
    np.testing.assert_allclose(weights[:2] / weights.mean(), np.array([10.0, plain]) / ((10 + 99 * plain) / 100),
                               rtol=1e-5)


def test_pipnet_loss_is_zero_when_perfect_and_counts_score_errors():
    from tests.test_codecs import perfect_outputs, random_points

    codec = make_codec("pipnet", 68, random_points(30, 68))
    points = random_points(2, 68, seed=5)
    outputs = perfect_outputs(codec, points)
    targets = {"score": outputs["score"],
               "offset": tf.stack([codec.encode(p)["offset"] for p in points]),
               "neighbor_offset": tf.stack([codec.encode(p)["neighbor_offset"] for p in points])}
    assert float(losses.pipnet_loss(outputs, targets, codec)) == pytest.approx(0.0, abs=1e-6)
    # score map all zeros: 68 ones missing out of 2 * 8 * 8 * 68 values -> MSE 1/64, weighted 10
    wrong = dict(outputs, score=tf.zeros_like(outputs["score"]))
    assert float(losses.pipnet_loss(wrong, targets, codec)) == pytest.approx(10 / 64, rel=1e-5)
    # own x offsets off by 0.5 everywhere: L1 over (N, K, 2) = 0.25
    shifted = dict(outputs, offset_x=outputs["offset_x"] + 0.5)
    assert float(losses.pipnet_loss(shifted, targets, codec)) == pytest.approx(0.25, rel=1e-5)


def test_landmark_loss_dispatches_and_scales():
    codec = make_codec("regression", 2)
    outputs = {"landmarks": tf.constant([[0.1, 0.0, 0.0, 0.0]])}
    targets = {"landmarks": tf.zeros((1, 4))}
    config = LossConfig(name="l1", scale=100.0)
    assert float(losses.landmark_loss(config, codec, outputs, targets)) == pytest.approx(10.0, rel=1e-5)
    with pytest.raises(ValueError, match="not a regression loss"):
        losses.landmark_loss(LossConfig(name="focal"), codec, outputs, targets)
