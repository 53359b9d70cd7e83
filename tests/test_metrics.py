import numpy as np
import pytest

from facekit.alignment.metrics import (
    auc,
    ced_curve,
    failure_rate,
    nme_per_sample,
    normalizing_distance,
    summarize,
    summarize_by_yaw,
)
from facekit.landmarks import IBUG68


def face_with_eyes(distance):
    """68 points at the origin except the outer eye corners (36, 45), `distance` apart horizontally."""
    points = np.zeros((68, 2))
    points[45, 0] = distance
    return points


def test_nme_by_hand():
    truth = np.stack([face_with_eyes(10.0), face_with_eyes(20.0)])
    pred = truth.copy()
    pred[0, :, 1] += 1.0          # every point 1 px off: error 1, IOD 10 -> 0.1
    pred[1, 0] += [3.0, 4.0]      # one point 5 px off: mean error 5/68, IOD 20
    np.testing.assert_allclose(nme_per_sample(pred, truth, IBUG68), [0.1, 5 / 68 / 20])


def test_nme_bbox_normaliser_is_sqrt_of_box_area():
    truth = np.zeros((1, 68, 2))
    truth[0, 1] = [4.0, 9.0]      # landmark box 4 x 9 -> sqrt 36 = 6
    pred = truth + [0.0, 0.6]
    np.testing.assert_allclose(nme_per_sample(pred, truth, IBUG68, "bbox"), [0.1])


def test_failure_rate_and_auc_by_hand():
    nme = np.array([0.0, 0.02, 0.05, 0.09, 0.2])
    assert failure_rate(nme, 0.08) == pytest.approx(0.4)
    assert failure_rate(nme, 0.10) == pytest.approx(0.2)
    # CED is a staircase: 1/5 from 0, 2/5 from 0.02, 3/5 from 0.05 (up to 0.08). Area / 0.08:
    expected = (0.2 * 0.02 + 0.4 * 0.03 + 0.6 * 0.03) / 0.08
    assert auc(nme, 0.08) == pytest.approx(expected, abs=2e-3)
    assert auc(np.zeros(3), 0.08) == pytest.approx(1.0)
    assert auc(np.full(3, 0.5), 0.08) == pytest.approx(0.0)
    x, y = ced_curve(nme, 0.08)
    assert len(x) == 801 and y[0] == pytest.approx(0.2) and y[-1] == pytest.approx(0.6)


def test_summary_keys_and_yaw_bins():
    nme = np.array([0.01, 0.03, 0.05, 0.2])
    s = summarize(nme)
    assert set(s) == {"nme", "fr_0.08", "fr_0.10", "auc_0.08", "auc_0.10", "count"}
    assert s["count"] == 4 and s["nme"] == pytest.approx(0.0725)
    table = summarize_by_yaw(nme, np.radians([10.0, -20.0, 45.0, 95.0]))
    assert table["0-30"]["count"] == 2 and table["30-60"]["count"] == 1 and table["60-90"]["count"] == 1
    assert summarize_by_yaw(nme[:2], np.radians([10.0, 5.0]))["60-90"] is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        nme_per_sample(np.zeros((2, 68, 2)), np.zeros((2, 5, 2)), IBUG68)


def test_regions_cover_every_point_once_and_region_nme_by_hand():
    from facekit.alignment.metrics import nme_by_region
    from facekit.landmarks import get_scheme, point_regions

    for name, sizes in (("ibug68", {"jaw": 17, "brows": 10, "nose": 9, "eyes": 12, "mouth": 20}),
                        ("wflw98", {"jaw": 33, "brows": 18, "nose": 9, "eyes": 18, "mouth": 20})):
        regions = point_regions(get_scheme(name).point_names)
        assert {r: len(i) for r, i in regions.items()} == sizes
        assert sorted(i for idx in regions.values() for i in idx) == list(range(sum(sizes.values())))
    scheme = get_scheme("ibug68")
    truth = np.random.default_rng(0).uniform(0.2, 0.8, (2, 68, 2))
    pred = truth.copy()
    pred[0, 48:68, 0] += 0.03                     # every mouth point of the first face off by 0.03
    d = normalizing_distance(truth, scheme, "inter_ocular")  # (2,)
    by_region = nme_by_region(pred, truth, scheme)
    assert by_region["mouth"] == pytest.approx(0.5 * 0.03 / d[0])
    assert by_region["jaw"] == by_region["eyes"] == 0.0
