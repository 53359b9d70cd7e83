"""WIDER FACE readers and the detection AP protocol on hand-made cases."""
import numpy as np
import pytest

from facekit.detection.evaluation import average_precision, read_difficulty_mat
from facekit.records.datasets.wider import read_retinaface_labels, read_wider_annotations, read_wider_gt
from tests.conftest import SHARED_DATA, requires_shared

# the official files end some rows with a space
GT = """a/one.jpg
2
10 20 30 40 0 0 0 0 0 0
50 60 5 6 2 0 0 1 1 0
a/empty_train_style.jpg
0
0 0 0 0 0 0 0 0 0 0
a/empty_val_style.jpg
1
0 0 0 0 0 0 0 0 0 0{SPACE}
a/last.jpg
1
1 2 3 4 0 0 0 0 0 0
""".format(SPACE=" ")


def test_wider_gt_reader_handles_the_zero_face_rows_and_invalid_faces(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(GT)
    images = read_wider_gt(str(path))
    assert [i.path for i in images] == ["a/one.jpg", "a/empty_train_style.jpg", "a/empty_val_style.jpg", "a/last.jpg"]
    assert [len(i.boxes_xyxy) for i in images] == [2, 0, 0, 1]
    np.testing.assert_array_equal(images[0].boxes_xyxy, [[10, 20, 40, 60], [50, 60, 55, 66]])
    assert images[0].invalid.tolist() == [False, True] and len(images[0].valid_boxes) == 1
    assert images[0].attributes[1].tolist() == [2, 0, 0, 1, 1, 0]


def test_wider_gt_reader_names_file_and_line_on_bad_input(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: expected numbers"):
        read_wider_gt(str(path))
    path.write_text("a.jpg\nseven\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected the face count"):
        read_wider_gt(str(path))


def test_retinaface_labels_with_missing_landmarks(tmp_path):
    path = tmp_path / "label.txt"
    path.write_text("# b/x.jpg\n10 10 20 20 12 14 0.0 26 14 0.0 19 20 0.0 14 25 0.0 24 25 0.0 0.9\n"
                    "40 40 8 8 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1\n# b/none.jpg\n")
    images = read_wider_annotations(str(path))
    assert [len(i.boxes_xyxy) for i in images] == [2, 0]
    np.testing.assert_array_equal(images[0].landmarks_px[0, 0], [12, 14])
    assert np.isnan(images[0].landmarks_px[1]).all() and not images[0].invalid.any()


@requires_shared
def test_readers_on_the_shared_files():
    val = read_wider_gt(str(SHARED_DATA / "wider_format" / "wider_face_val_bbx_gt.txt"))
    assert len(val) == 3226 and sum(len(i.boxes_xyxy) for i in val) == 39704  # 39708 rows less 4 zero rows
    assert sum(len(i.boxes_xyxy) == 0 for i in val) == 4
    afw = read_retinaface_labels(str(SHARED_DATA / "afw_detection" / "label.txt"))
    gt = read_wider_annotations(str(SHARED_DATA / "afw_detection" / "afw_bbx_gt.txt"))
    assert len(afw) == len(gt) == 185 and sum(len(i.boxes_xyxy) for i in afw) == 337
    np.testing.assert_array_equal(np.concatenate([i.boxes_xyxy for i in afw]),
                                  np.concatenate([i.boxes_xyxy for i in gt]))


FACES = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
MISS = [40, 40, 50, 50]


def _ap(boxes, scores, ignore=(False, False)):
    return average_precision([(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float))], [FACES],
                             [np.asarray(ignore)])


def test_average_precision_hand_cases():
    assert _ap(FACES, [0.9, 0.8]) == pytest.approx(1.0)
    assert _ap([FACES[0], MISS], [0.9, 0.8]) == pytest.approx(0.5)               # half recall, then a miss
    assert _ap([MISS, FACES[0], FACES[1]], [0.9, 0.8, 0.7]) == pytest.approx(2 / 3)  # envelope 2/3 for all recall
    assert _ap([FACES[0], FACES[0]], [0.9, 0.8]) == pytest.approx(0.5)           # a duplicate is a false positive
    assert _ap(FACES, [0.9, 0.8], ignore=(True, False)) == pytest.approx(1.0)     # ignored face: not a proposal
    assert _ap([MISS, FACES[1]], [0.9, 0.8], ignore=(True, False)) == pytest.approx(0.5)
    assert _ap(np.zeros((0, 4)), []) == 0.0


def test_difficulty_mat_reader(tmp_path):
    from scipy.io import savemat

    files = np.empty((2, 1), object)
    kept = np.empty((2, 1), object)
    files[0, 0] = np.array([["0_Parade_1"], ["0_Parade_2"]], object)
    kept[0, 0] = np.empty((2, 1), object)
    kept[0, 0][0, 0], kept[0, 0][1, 0] = np.array([[1], [3]]), np.array([[2]])
    files[1, 0] = np.array([["1_Handshaking_9"]], object)
    kept[1, 0] = np.empty((1, 1), object)
    kept[1, 0][0, 0] = np.array([[1]])
    savemat(tmp_path / "wider_easy_val.mat", {"file_list": files, "gt_list": kept})
    subset = read_difficulty_mat(str(tmp_path / "wider_easy_val.mat"))
    assert {k: v.tolist() for k, v in subset.items()} == {"0_Parade_1": [0, 2], "0_Parade_2": [1],
                                                          "1_Handshaking_9": [0]}
    with pytest.raises(ValueError, match="not a WIDER FACE difficulty"):
        savemat(tmp_path / "other.mat", {"x": 1})
        read_difficulty_mat(str(tmp_path / "other.mat"))


def test_evaluate_detection_names_a_missing_ground_truth_file(tmp_path, capsys):
    from training import evaluate_detection

    missing = tmp_path / "no_such_gt.txt"
    assert evaluate_detection.main(["--gt", str(missing), "--images", str(tmp_path)]) == 2
    assert f"--gt {missing}: no such file" in capsys.readouterr().err
    assert evaluate_detection.main(["--gt", str(missing), "--images", str(tmp_path / "photos")]) == 2
    assert "no such" in capsys.readouterr().err
