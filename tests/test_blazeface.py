"""MediaPipe BlazeFace as a baseline: SSD anchors, decoding by hand, and the wheel's models on real photos."""
import importlib.metadata

import numpy as np
import pytest

from facekit.infer.blazeface import MODELS, WHEEL, baseline_model_path, decode, ssd_anchors
from tests.conftest import SHARED_DATA, requires_shared


def wheel_installed() -> bool:
    try:
        baseline_model_path("blazeface-full")
    except ValueError:
        return False
    return True


requires_wheel = pytest.mark.skipif(not wheel_installed(),
                                    reason=f"the {WHEEL} wheel is absent: pip install --no-deps -r "
                                           "requirements-baselines.txt")


def test_anchor_grids_match_mediapipes_counts_and_order():
    short = ssd_anchors(128, (8, 16, 16, 16), True)
    full = ssd_anchors(192, (4,), False)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8: 16 x 16 cells, two anchors each; then stride 16 (three layers merged): 8 x 8 cells, six each
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])  # row-major: x moves first
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[48 + 2], [2.5 / 48, 1.5 / 48])


def test_a_box_decoded_by_hand():
    anchors = ssd_anchors(192, (4,), False)
    k = 48 * 10 + 20  # row 10, column 20: centre (82, 42) px
    raw = np.zeros((2304, 16), np.float32)
    raw[k, :4] = [6, -4, 40, 50]  # centre offset (6, -4), width 40, height 50
    raw[k, 4:6] = [-10, -8]  # right eye offset from the anchor centre
    logits = np.full(2304, -50.0)
    logits[k] = np.log(3.0)  # sigmoid -> 0.75
    scores, boxes, keypoints = decode(raw, logits, anchors, 192)
    assert scores[k] == pytest.approx(0.75) and scores[0] < 1e-20
    np.testing.assert_allclose(boxes[k], [88 - 20, 38 - 25, 88 + 20, 38 + 25])
    np.testing.assert_allclose(keypoints[k, 0], [72, 34])


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ValueError, match=r"pip install --no-deps mediapipe==0\.10\.21"):
        baseline_model_path("blazeface-short")
    with pytest.raises(ValueError, match="unknown BlazeFace model 'blazeface'"):
        baseline_model_path("blazeface")


@requires_wheel
@requires_shared
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_wheels_models_find_the_faces_of_afw_photos(name):
    import cv2

    from facekit.boxes import box_iou
    from facekit.infer.blazeface import BlazeFaceDetector
    from facekit.records.datasets.wider import read_wider_annotations

    folder = SHARED_DATA / "afw_detection"
    images = read_wider_annotations(str(folder / "label.txt"))[:12]
    detector = BlazeFaceDetector(name, score_threshold=0.5)
    assert detector.size == MODELS[name].size
    hits = faces = 0
    for item in images:
        found = detector.detect(cv2.imread(str(folder / "images" / item.path)), color="bgr")
        assert found.landmarks_px.shape == (len(found), 5, 2)
        assert np.isfinite(found.landmarks_px[:, :3]).all() and np.isnan(found.landmarks_px[:, 3:]).all()
        truth = item.boxes_xyxy[~item.invalid]
        faces += len(truth)
        if len(found) and len(truth):
            hits += int((box_iou(truth, found.boxes_xyxy).max(axis=1) >= 0.5).sum())
    assert hits >= 0.5 * faces, (hits, faces)
