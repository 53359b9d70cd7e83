import numpy as np
import pytest
import scipy.io

from facekit.records.datasets import ReaderOptions, SampleError, get_format
from facekit.records.datasets.mat3d import is_300w_test_image
from facekit.records.datasets.pts import read_pts
from tests.conftest import SHARED_DATA, requires_shared


def test_pts_with_and_without_header(tmp_path):
    with_header = tmp_path / "a.pts"
    with_header.write_text("version: 1\nn_points: 3\n{\n1 2\n3.5 4\n5 6\n}\n")
    bare = tmp_path / "b.pts"
    bare.write_text("1 2\n3.5 4\n5 6\n")
    np.testing.assert_allclose(read_pts(str(with_header)), [[1, 2], [3.5, 4], [5, 6]])
    np.testing.assert_allclose(read_pts(str(bare)), read_pts(str(with_header)))


@pytest.mark.parametrize("text, message", [
    ("version: 1\nn_points: 4\n{\n1 2\n3 4\n}\n", "n_points 4 but the file has 2 points"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "no closing"),
    ("1 2 3\n", "odd number of coordinates"),
    ("1 2\nx 4\n", "could not convert string to float: 'x'"),
])
def test_malformed_pts_name_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(SampleError, match=message) as err:
        read_pts(str(path))
    assert str(path) in str(err.value)


def test_ibug68_reader_converts_one_based_points(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "face.pts").write_text("version: 1\nn_points: 1\n{\n1 1\n}\n")
    (tmp_path / "sub" / "face.png").write_bytes(b"")
    fmt = get_format("ibug68")
    items = fmt.list_items(str(tmp_path), ReaderOptions())
    assert items == ["sub/face.pts"]
    sample = fmt.load_sample(str(tmp_path), items[0], ReaderOptions())
    assert sample.source_id == "sub/face.png"
    np.testing.assert_allclose(sample.points_px, [[0.5, 0.5]])
    (tmp_path / "sub" / "face.png").unlink()
    with pytest.raises(SampleError, match="no image"):
        fmt.load_sample(str(tmp_path), items[0], ReaderOptions())


def _wflw_line(path="1--x/img.jpg"):
    coords = " ".join(f"{v:.1f}" for v in np.arange(196) * 0.5)
    return f"{coords} 10 20 110 140 1 0 0 1 0 1 {path}"


def test_wflw_line_reader(tmp_path):
    ann = tmp_path / "list.txt"
    ann.write_text(_wflw_line() + "\n" + _wflw_line() + "\n\n" + _wflw_line("2--y/b.jpg")[30:] + "\n")
    fmt = get_format("wflw")
    opts = ReaderOptions(annotations=str(ann))
    items = fmt.list_items(str(tmp_path), opts)
    assert [i[0] for i in items] == ["1--x/img.jpg", "1--x/img.jpg#2", "2--y/b.jpg"]
    sample = fmt.load_sample(str(tmp_path), items[1], opts)
    assert sample.points_px.shape == (98, 2)
    np.testing.assert_allclose(sample.points_px[1], [1.0 + 0.5, 1.5 + 0.5])  # 0-based pixel centres
    np.testing.assert_allclose(sample.box_xyxy, [10.5, 20.5, 110.5, 140.5])
    assert sample.attributes == (1, 0, 0, 1, 0, 1)
    assert sample.image_path == str(tmp_path / "1--x" / "img.jpg")
    with pytest.raises(SampleError, match=r"list.txt:4: WFLW line has \d+ fields, expected 207"):
        fmt.load_sample(str(tmp_path), items[2], opts)
    with pytest.raises(ValueError, match="needs --annotations"):
        fmt.list_items(str(tmp_path), ReaderOptions())


def test_mtfl_reader(tmp_path):
    (tmp_path / "training.txt").write_text(
        "lfw\\a.jpg 1 2 3 4 5 11 12 13 14 15\nnet/b.jpg 1 2 3 4 5 11 12 13 14 15 1 2 1 3\nc.jpg 1 2\n")
    fmt = get_format("mtfl")
    items = fmt.list_items(str(tmp_path), ReaderOptions())
    sample = fmt.load_sample(str(tmp_path), items[0], ReaderOptions())
    assert sample.source_id == "lfw/a.jpg"
    np.testing.assert_allclose(sample.points_px[:, 0], np.array([1, 2, 3, 4, 5]) + 0.5)
    np.testing.assert_allclose(sample.points_px[:, 1], np.array([11, 12, 13, 14, 15]) + 0.5)
    assert fmt.load_sample(str(tmp_path), items[1], ReaderOptions()).points_px.shape == (5, 2)
    with pytest.raises(SampleError, match="training.txt:3: MTFL line has 3 fields"):
        fmt.load_sample(str(tmp_path), items[2], ReaderOptions())


def test_300wlp_listing_flags_and_landmark_sources(synthetic_300wlp):
    fmt = get_format("300wlp")
    root = str(synthetic_300wlp)
    items = fmt.list_items(root, ReaderOptions())
    assert len(items) == 30 and not any(i.startswith("landmarks/") for i in items)
    assert {i.split("/")[0] for i in items} == {"AFW", "AFW_Flip", "HELEN", "LFPW", "IBUG"}
    kept = fmt.list_items(root, ReaderOptions(exclude_300w_test=True))
    assert not any(is_300w_test_image(i) for i in kept)
    assert len(items) - len(kept) == 6 + 3  # 6 IBUG faces, 3 LFPW test faces
    sample = fmt.load_sample(root, "AFW/AFW_synth_00000_0.mat", ReaderOptions())
    assert sample.source_id == "AFW/AFW_synth_00000_0.jpg" and sample.pose_rad.shape == (3,)
    mat = scipy.io.loadmat(str(synthetic_300wlp / "AFW" / "AFW_synth_00000_0.mat"))
    np.testing.assert_allclose(sample.points_px, mat["pt2d"].T - 0.5)
    np.testing.assert_allclose(sample.pose_rad, mat["Pose_Para"][0, :3])
    # the landmarks/ files are read instead of pt2d when asked for
    pts_file = synthetic_300wlp / "landmarks" / "AFW" / "AFW_synth_00000_0_pts.mat"
    original = {k: v for k, v in scipy.io.loadmat(str(pts_file)).items() if not k.startswith("__")}
    scipy.io.savemat(str(pts_file), {"pts_2d": original["pts_2d"] + 1, "pts_3d": original["pts_3d"] + 2})
    for source, offset in (("pts_2d", 1), ("pts_3d", 2)):
        s = fmt.load_sample(root, "AFW/AFW_synth_00000_0.mat", ReaderOptions(landmarks_source=source))
        np.testing.assert_allclose(s.points_px, sample.points_px + offset)
    scipy.io.savemat(str(pts_file), original)
    with pytest.raises(SampleError, match="AFW_Flip/AFW_synth_00000_0_pts.mat: no such landmarks file"):
        fmt.load_sample(root, "AFW_Flip/AFW_synth_00000_0.mat", ReaderOptions(landmarks_source="pts_2d"))


def test_mat_without_keys_or_with_wrong_shape(tmp_path):
    fmt = get_format("300wlp")
    (tmp_path / "AFW").mkdir()
    scipy.io.savemat(str(tmp_path / "AFW" / "a.mat"), {"Pose_Para": np.zeros((1, 7))})
    scipy.io.savemat(str(tmp_path / "AFW" / "b.mat"), {"Pose_Para": np.zeros((1, 7)), "pt2d": np.zeros((2, 21))})
    (tmp_path / "AFW" / "c.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(SampleError, match="a.mat: .mat file has no pt2d"):
        fmt.load_sample(str(tmp_path), "AFW/a.mat", ReaderOptions())
    with pytest.raises(SampleError, match=r"b.mat: pt2d has shape \(2, 21\), expected \(2, 68\)"):
        fmt.load_sample(str(tmp_path), "AFW/b.mat", ReaderOptions())
    with pytest.raises(SampleError, match="c.mat: unreadable .mat file"):
        fmt.load_sample(str(tmp_path), "AFW/c.mat", ReaderOptions())


@requires_shared
def test_aflw2000_reader_on_real_files():
    fmt = get_format("aflw2000")
    root = str(SHARED_DATA / "aflw2000_sample")
    items = fmt.list_items(root, ReaderOptions())
    assert len(items) == 16
    sample = fmt.load_sample(root, items[0], ReaderOptions())
    mat = scipy.io.loadmat(f"{root}/{items[0]}")
    assert sample.source_id == items[0].replace(".mat", ".jpg")
    np.testing.assert_allclose(sample.points_px, mat["pt3d_68"][:2].T - 0.5)
    assert ((sample.points_px > 0) & (sample.points_px < 450)).all()
