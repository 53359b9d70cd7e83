"""DBFace's CenterNet codec: hand-computed targets and encode -> decode round trips."""
import math

import numpy as np
import pytest
import tensorflow as tf

from facekit.codecs.centernet import CenterNetCodec, exp_code, log_code

CODEC = CenterNetCodec()


def outputs_from_targets(targets):
    """What a perfect network would output: the target heatmap, (l, t, r, b) distances, the landmark codes."""
    box = targets["box"]
    h, w = box.shape[:2]
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    anchor = np.stack([xs, ys], -1).astype(np.float32)
    ltrb = np.concatenate([anchor - box[..., :2], box[..., 2:] - anchor], -1)
    return {"heatmap": targets["heatmap"][None], "box": tf.constant(ltrb[None]),
            "landmarks": targets["landmarks"][None]}


def test_log_code_is_continuous_and_inverted_by_exp_code():
    v = tf.constant([-20.0, -math.e, -1.0, 0.0, 0.5, math.e - 1e-4, math.e, 7.0])
    np.testing.assert_allclose(exp_code(log_code(v)), v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_code(tf.constant([math.e, 1.0])), [1.0, 1 / math.e], rtol=1e-6)


def test_hand_computed_targets_of_one_face():
    # a 32 x 48 px face centred at (50, 30) on a 128 x 128 input: centre cell (12, 7) of the 32 x 32 grid
    box = np.array([[34.0, 6.0, 66.0, 54.0]])
    marks = np.array([[[42, 20], [58, 20], [50, 30], [44, 42], [56, 42]]], np.float64)
    t = {k: v.numpy() for k, v in CODEC.encode(box, marks, 128, 128).items()}
    assert t["heatmap"][7, 12, 0] == 1.0 and t["heatmap"].max() == 1.0
    # radius 32 / 16 = 2 cells across, 3 cells down; sigma (2 r + 1) / 6
    sx, sy = 5 / 6, 7 / 6
    np.testing.assert_allclose(t["heatmap"][7, 14, 0], math.exp(-4 / (2 * sx * sx)), rtol=1e-5)
    np.testing.assert_allclose(t["heatmap"][10, 12, 0], math.exp(-9 / (2 * sy * sy)), rtol=1e-5)
    assert t["heatmap"][7, 15, 0] == 0 and t["heatmap"][11, 12, 0] == 0  # truncated outside the radius
    assert t["pos_weight"][7, 12, 0] == pytest.approx(1 + 10 * (48 - 25) / 275)
    np.testing.assert_allclose(t["box"][7, 12], box[0] / 4)
    # box cells: Gaussian >= 0.3, i.e. dx^2 / (2 sx^2) + dy^2 / (2 sy^2) <= ln(1 / 0.3): |dx| <= 1 and |dy| <= 1,
    # 9 cells, each weighing 1/9 so that the face weighs 1 in the box loss
    assert (t["box_weight"] > 0).sum() == 9 and t["box_weight"].sum() == pytest.approx(1.0)
    assert t["box_weight"][7, 12, 0] == pytest.approx(1 / 9) and t["box_weight"][7, 14, 0] == 0
    assert t["landmark_mask"].sum() == 1 and t["landmark_mask"][7, 12, 0] == 1
    # left eye x: 42 / 4 - 12.5 = -2 cells -> log_code(-2) / 4 = -2 / e / 4
    assert t["landmarks"][7, 12, 0] == pytest.approx(-2 / math.e / 4, rel=1e-5)
    assert t["num_faces"] == 1 and t["keep"].min() == 1


def test_small_faces_are_ignored_not_negative_and_padding_rows_are_nothing():
    box = np.array([[40.0, 40.0, 50.0, 50.0], [0, 0, 0, 0]])  # 10 x 10 < 12 x 12; a padding row
    t = {k: v.numpy() for k, v in CODEC.encode(box, np.full((2, 5, 2), np.nan), 128, 128).items()}
    assert t["heatmap"].max() == 0 and t["num_faces"] == 0
    assert t["keep"][11, 11, 0] == 0 and t["keep"].sum() == 32 * 32 - 1
    assert t["box_weight"].sum() == 0  # nor a box target (under min_box_size)
    t = {k: v.numpy() for k, v in CenterNetCodec(min_box_size=5.0).encode(box, np.full((2, 5, 2), np.nan), 128,
                                                                         128).items()}
    assert t["box_weight"][11, 11, 0] == 1 and t["box_weight"].sum() == 1  # 5 x 5 or more: its one cell


def test_box_landmark_code_by_hand():
    # the face of test_hand_computed_targets_of_one_face: its 9 box cells each carry the points in box units
    box = np.array([[34.0, 6.0, 66.0, 54.0]])
    marks = np.array([[[42, 20], [58, 20], [50, 30], [44, 42], [56, 42]]], np.float64)
    t = {k: v.numpy() for k, v in CenterNetCodec(landmark_code="box").encode(box, marks, 128, 128).items()}
    np.testing.assert_allclose(t["landmark_mask"], t["box_weight"])
    # left eye x at the cell right of the centre (anchor x 13.5 cells = 54 px): (42 - 54) / 32
    assert t["landmarks"][7, 13, 0] == pytest.approx(-12 / 32)
    # mouth-right y at the cell below the centre (anchor y 8.5 cells = 34 px): (42 - 34) / 48
    assert t["landmarks"][8, 12, 9] == pytest.approx(8 / 48)
    assert t["landmarks"][0, 0].tolist() == [0.0] * 10 and t["landmark_mask"][0, 0, 0] == 0
    with pytest.raises(ValueError, match="landmark_code"):
        CenterNetCodec(landmark_code="cells")


@pytest.mark.parametrize("codec", [CODEC, CenterNetCodec(landmark_code="box")], ids=["log", "box"])
def test_round_trip_returns_boxes_and_points(codec):
    rng = np.random.default_rng(0)
    centres = np.array([[40, 40], [150, 60], [90, 170], [200, 200]], np.float64)
    sides = np.array([[30, 36], [60, 70], [24, 28], [90, 80]], np.float64)
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], 1)
    marks = centres[:, None] + rng.uniform(-0.4, 0.4, (4, 5, 2)) * sides[:, None]
    targets = {k: v.numpy() for k, v in codec.encode(boxes, marks, 256, 256).items()}
    assert targets["box_weight"].sum() == pytest.approx(4.0)  # every face weighs 1, whatever its size
    out = {k: v.numpy()[0] for k, v in codec.decode(outputs_from_targets(targets), top_k=8).items()}
    found = out["scores"] == 1.0
    assert found.sum() == 4
    order = np.argsort(out["boxes_xyxy"][found][:, 0] + 1000 * out["boxes_xyxy"][found][:, 1])
    expected = np.argsort(boxes[:, 0] + 1000 * boxes[:, 1])
    np.testing.assert_allclose(out["boxes_xyxy"][found][order], boxes[expected], atol=1e-4)
    np.testing.assert_allclose(out["landmarks_px"][found][order], marks[expected], atol=1e-3)


def test_an_image_without_faces_is_all_background():
    t = {k: v.numpy() for k, v in CODEC.encode(np.zeros((0, 4)), np.zeros((0, 5, 2)), 64, 96).items()}
    assert t["heatmap"].shape == (16, 24, 1) and np.isfinite(t["heatmap"]).all()
    assert t["heatmap"].max() == 0 and t["pos_weight"].max() == 0 and t["keep"].min() == 1
    assert t["box_weight"].sum() == 0 and t["landmark_mask"].sum() == 0 and t["num_faces"] == 0
