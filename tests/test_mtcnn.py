"""MTCNN: networks and weight import, box arithmetic on hand cases, the cascade against the `mtcnn` package on real
photos, and the LiteRT cascade against the Keras cascade."""
import glob
import importlib.util

import cv2
import numpy as np
import pytest

import models  # noqa: F401
from facekit.boxes import box_iou, calibrate, nms, regression_targets, to_square
from facekit.detection.mtcnn.networks import export_mtcnn, keras_cascade
from facekit.infer.mtcnn import MTCNN, as_rgb, crop_windows, pnet_candidates, pyramid_scales, tflite_cascade
from models.mtcnn import BUILDERS, WEIGHT_ORDER, set_package_weights
from tests.conftest import SHARED_DATA, requires_shared

HAS_PACKAGE = importlib.util.find_spec("mtcnn") is not None
requires_package = pytest.mark.skipif(not HAS_PACKAGE, reason="the `mtcnn` package (dev dependency) is not installed")
AFW_PHOTOS = sorted(glob.glob(str(SHARED_DATA / "afw_detection" / "images" / "*" / "*.jpg")))
PARAMS = {"mtcnn_pnet": 6632, "mtcnn_rnet": 100178, "mtcnn_onet": 389040}  # the original MTCNN's sizes


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_networks_have_the_original_parameter_counts_and_outputs(name):
    model = BUILDERS[name]()
    assert model.count_params() == PARAMS[name]
    x = np.zeros((2, 30, 40, 3) if name == "mtcnn_pnet" else (2, *model.input_shape[1:]), np.float32)
    out = model(x)
    if name == "mtcnn_pnet":
        assert out["box"].shape == (2, 10, 15, 4) and out["face"].shape == (2, 10, 15, 2)
    else:
        assert out["box"].shape == (2, 4) and out["face"].shape == (2, 2)
    assert ("landmarks" in out) == (name == "mtcnn_onet")
    np.testing.assert_allclose(np.asarray(out["face"]).sum(-1), 1.0, atol=1e-5)


def test_set_package_weights_checks_the_list_length():
    with pytest.raises(ValueError, match="expected 16"):
        set_package_weights(BUILDERS["mtcnn_rnet"](), [np.zeros(1)] * 5)


@requires_package
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_weight_import_round_trip_and_parity_with_the_package(name):
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    from models.mtcnn import package_weights

    weights = package_weights(name)
    ours = BUILDERS[name]()
    set_package_weights(ours, weights)
    flat = [w for layer in WEIGHT_ORDER[name] for w in ours.get_layer(layer).get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(flat, weights)) and len(flat) == len(weights)
    theirs = {"mtcnn_pnet": PNet, "mtcnn_rnet": RNet, "mtcnn_onet": ONet}[name]()
    theirs.build()
    theirs.set_weights(weights)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 31, 45, 3) if name == "mtcnn_pnet" else
                                         (3, *ours.input_shape[1:])).astype(np.float32)
    expected = [np.asarray(t) for t in theirs(x)]
    got = ours(x)
    keys = ("box", "landmarks", "face") if name == "mtcnn_onet" else ("box", "face")
    for key, value in zip(keys, expected):
        np.testing.assert_allclose(np.asarray(got[key]), value, atol=1e-6)


def test_nms_hand_cases():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12]], float)  # IoU 0->1 0.68, 0->2 0.47, 1->2 0.68
    scores = np.array([0.9, 0.8, 0.7])
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]               # greedy: box 1 is gone, so box 2 survives
    assert nms(boxes, scores, 0.5, greedy=False).tolist() == [0]    # the package's rule: box 1 still suppresses 2
    assert nms(boxes, scores[::-1].copy(), 0.7).tolist() == [2, 1, 0]
    inner = np.array([[0, 0, 10, 10], [0, 0, 5, 5]], float)
    assert box_iou(inner[:1], inner[1:], "min")[0, 0] == 1.0 and box_iou(inner[:1], inner[1:])[0, 0] == 0.25
    assert nms(inner, np.array([0.9, 0.8]), 0.7, mode="min").tolist() == [0]
    assert nms(inner, np.array([0.9, 0.8]), 0.7).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_calibration_squaring_and_targets_by_hand():
    box, offsets = np.array([[10.0, 10, 20, 20]]), np.array([[0.1, -0.1, 0.2, 0.0]])
    np.testing.assert_allclose(calibrate(box, offsets), [[11, 9, 22, 20]])
    np.testing.assert_allclose(calibrate(box, offsets, inclusive=True), [[11.1, 8.9, 22.2, 20]])
    np.testing.assert_allclose(regression_targets(box, calibrate(box, offsets)), offsets)
    np.testing.assert_allclose(to_square(np.array([[0.0, 0, 10, 4]])), [[0, -3, 10, 7]])


def test_pnet_candidates_and_pyramid_by_hand():
    face = np.zeros((4, 5, 2), np.float32)
    face[..., 0] = 1
    face[1, 2] = [0.1, 0.9]
    box = np.zeros((4, 5, 4), np.float32)
    box[1, 2] = [0.1, 0, 0, -0.1]
    found = pnet_candidates(box, face, 0.5, 0.6)  # cell (1, 2): window x 5..16, y 3..14 at scale 0.5
    np.testing.assert_allclose(found, [[(5 + 1.1) / 0.5, 6, 32, (14 - 1.1) / 0.5, 0.9]], rtol=1e-6)
    scales = pyramid_scales(100, 200, min_face=20)   # short side 100 x 0.6 = 60 -> 42.5, 30.2, 21.4, 15.2 >= 12
    np.testing.assert_allclose(scales, 0.6 * 0.709 ** np.arange(5))
    scales = pyramid_scales(1024, 717, min_face=40)  # an AFW photo: 215 px at 0.3, then 8 smaller levels >= 12 px
    np.testing.assert_allclose(scales, 0.3 * 0.709 ** np.arange(9))
    assert 717 * scales[-1] >= 12 > 717 * scales[-1] * 0.709


def test_crop_windows_match_tf_crop_and_resize():
    import tensorflow as tf

    image = np.random.default_rng(1).uniform(-1, 1, (50, 70, 3)).astype(np.float32)
    boxes = np.array([[5.3, 4.1, 30.7, 29.5], [-10, -8, 20, 22], [60, 40, 90, 70]])
    expected = tf.image.crop_and_resize(image[None], boxes[:, [1, 0, 3, 2]] / [50, 70, 50, 70], [0, 0, 0],
                                        (24, 24)).numpy()
    got = crop_windows(image, boxes, 24)
    # OpenCV's bilinear weights are 1/32 steps; boxes across the image edge read 0 beyond the edge pixels' centres
    # exactly as TF does (OpenCV alone would blend the edge pixel with 0 there: the cause of the 4 AFW faces on
    # which the cascade once disagreed with the package)
    np.testing.assert_allclose(got, expected, atol=0.02)
    assert (got[1, :, :7] == 0).all() and (got[2, :, -7:] == 0).all()


def test_images_must_say_their_colour_order():
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 2] = 255
    assert as_rgb(image, "bgr")[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match="color must be"):
        as_rgb(image, "grey")
    with pytest.raises(ValueError, match="uint8"):
        as_rgb(image.astype(np.float32), "rgb")
    with pytest.raises(TypeError):
        MTCNN(None, None, None).detect(image)  # the colour order is a required keyword


def _random_networks():
    import keras

    keras.utils.set_random_seed(3)
    return {name: build() for name, build in BUILDERS.items()}


def test_tflite_cascade_equals_keras_cascade(tmp_path):
    """Random weights with zero thresholds give hundreds of candidates through every stage."""
    networks = _random_networks()
    report = export_mtcnn(networks, str(tmp_path))
    assert max(entry["max_abs_diff"] for entry in report.values()) < 1e-4
    image = np.random.default_rng(2).integers(0, 255, (90, 120, 3), np.uint8)
    options = dict(thresholds=(0.0, 0.0, 0.0), chunk=64)
    expected = keras_cascade(networks, **options).detect(image, color="rgb")
    got = tflite_cascade(str(tmp_path), **options).detect(image, color="rgb")
    assert len(expected) > 0 and len(got) == len(expected)
    np.testing.assert_allclose(got.boxes_xyxy, expected.boxes_xyxy, atol=1e-3)
    np.testing.assert_allclose(got.landmarks_px, expected.landmarks_px, atol=1e-3)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)


def _agreement(photos, ours):
    """Per package face: (IoU with our best match, max landmark distance); plus our face count."""
    from mtcnn import MTCNN as Package

    package, matches, ours_count, theirs_count = Package(), [], 0, 0
    for path in photos:
        image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        theirs = np.asarray(package.detect_faces(image.copy(), threshold_onet=0.7, output_type="numpy",
                                                 box_format="xyxy")).reshape(-1, 16)
        found = ours.detect(image, color="rgb")
        ours_count, theirs_count = ours_count + len(found), theirs_count + len(theirs)
        if len(theirs) and not len(found):
            matches += [(0.0, np.inf)] * len(theirs)
            continue
        for row in theirs:
            iou = box_iou(row[None, 1:5], found.boxes_xyxy)[0]
            best = int(iou.argmax())
            marks = np.stack([row[6:11], row[11:16]], axis=-1)
            matches.append((iou[best], float(np.linalg.norm(marks - found.landmarks_px[best], axis=-1).max())))
    return np.asarray(matches), ours_count, theirs_count


def _assert_agrees(photos, ours):
    matches, ours_count, theirs_count = _agreement(photos, ours)
    assert theirs_count > 0
    assert matches[:, 0].min() >= 0.9 and matches[:, 1].max() <= 2.0
    assert ours_count <= 1.05 * theirs_count


@requires_shared
@requires_package
def test_cascade_agrees_with_the_package_on_afw_photos():
    from models.mtcnn import imported_networks

    _assert_agrees(AFW_PHOTOS[:25], keras_cascade(imported_networks()))


@requires_shared
@requires_package
@pytest.mark.slow
def test_cascade_agrees_with_the_package_on_all_afw_photos(tmp_path):
    from models.mtcnn import imported_networks

    export_mtcnn(imported_networks(), str(tmp_path))
    _assert_agrees(AFW_PHOTOS, tflite_cascade(str(tmp_path)))


def test_package_rule_nms_equals_the_full_matrix_rule_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(100):
        count = int(rng.integers(0, 60))
        corner = rng.uniform(0, 50, (count, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(1, 30, (count, 2))], axis=1)
        scores = np.round(rng.uniform(size=count), 1)  # ties keep their input order
        for mode in ("union", "min"):
            order = np.argsort(-scores, kind="stable")
            overlap = box_iou(boxes[order], boxes[order], mode) > 0.5
            expected = order[~np.triu(overlap, k=1).any(axis=0)]
            assert nms(boxes, scores, 0.5, mode, greedy=False, max_pairs=7).tolist() == expected.tolist()


def test_windows_are_labelled_by_iou():
    from facekit.detection.mtcnn.samples import label_windows
    from facekit.records.schema import SampleKind

    faces = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], float)
    windows = np.array([[0, 0, 10, 11],      # IoU 100/110 = 0.91: positive
                        [0, 0, 10, 20],      # 0.5: part
                        [0, 0, 10, 30],      # 0.33: ambiguous
                        [5, 5, 15, 15],      # 25/175 = 0.14: negative
                        [105, 100, 125, 120], [300, 300, 310, 310]], float)  # 0.6: part; far: negative
    kinds, best = label_windows(windows, faces)
    assert kinds.tolist() == [SampleKind.POSITIVE, SampleKind.PART, -1, SampleKind.NEGATIVE, SampleKind.PART,
                              SampleKind.NEGATIVE]
    assert best.tolist()[:2] == [0, 0] and best[4] == 1
    assert label_windows(windows, np.zeros((0, 4)))[0].tolist() == [0] * 6


def test_ohem_keeps_exactly_the_hardest_70_percent():
    from facekit.detection.mtcnn.loss import mtcnn_loss, ohem_face_loss

    # 10 negative/positive samples with losses -log(p) for p = 0.1 .. 1.0, plus part and landmark samples ignored
    p = np.linspace(0.1, 1.0, 10)
    kinds = np.array([1] * 10 + [2, 3])
    face = np.stack([1 - np.r_[p, 0.01, 0.01], np.r_[p, 0.01, 0.01]], axis=1).astype(np.float32)
    expected = -np.log(p[:7]).mean()  # 7 of 10 valid samples, the hardest (smallest p)
    assert float(ohem_face_loss(face, kinds)) == pytest.approx(expected, rel=1e-5)
    assert float(ohem_face_loss(face, kinds, keep=1.0)) == pytest.approx(-np.log(p).mean(), rel=1e-5)
    box_true = np.zeros((12, 4), np.float32)
    outputs = {"face": face, "box": np.ones((12, 4), np.float32), "landmarks": np.full((12, 10), 2, np.float32)}
    total, parts = mtcnn_loss(outputs, kinds, box_true, np.zeros((12, 10), np.float32), weights=(1.0, 0.5, 1.0))
    assert float(parts["box"]) == pytest.approx(4.0) and float(parts["landmarks"]) == pytest.approx(40.0)
    assert float(total) == pytest.approx(expected + 2.0 + 40.0, rel=1e-5)
