import json
import os
import shutil

import cv2
import numpy as np
import pytest
import scipy.io

from facekit.geometry import crop_and_resize, crop_norm_to_points
from facekit.records import convert as convert_module
from facekit.records import shards as shards_module
from facekit.records.convert import ConvertSettings, convert_dataset, read_image
from facekit.records.datasets import ReaderOptions
from facekit.records.datasets.pts import read_pts
from facekit.records.schema import read_records
from facekit.records.shards import ConversionError
from tests.conftest import SHARED_DATA, requires_shared
from tfrecords_tools.convert import main as convert_main


def _shard_bytes(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder)) if "tfrecord" in n}


def test_synthetic_conversion_is_identical_for_any_worker_count(synthetic_300wlp, tmp_path):
    settings = ConvertSettings("300wlp", image_size=64, shard_size=8)
    one = convert_dataset(str(synthetic_300wlp), str(tmp_path / "w1"), settings, workers=1, progress=False)
    convert_dataset(str(synthetic_300wlp), str(tmp_path / "w2"), settings, workers=2, progress=False)
    assert one["num_records"] == 30 and one["num_skipped"] == 0
    assert [s["file"] for s in one["shards"]] == [f"300wlp-{k:05d}-of-00004.tfrecord" for k in range(4)]
    assert _shard_bytes(tmp_path / "w1") == _shard_bytes(tmp_path / "w2")
    w1, w2 = (str(tmp_path / name).encode() for name in ("w1", "w2"))
    assert (tmp_path / "w1" / "manifest.json").read_bytes().replace(w1, w2) == \
        (tmp_path / "w2" / "manifest.json").read_bytes()
    recs = read_records(str(tmp_path / "w1"))
    assert recs[0]["image"].shape == (64, 64, 3)
    assert recs[0]["source_id"] == b"AFW/AFW_synth_00000_0.jpg"
    mat = scipy.io.loadmat(str(synthetic_300wlp / "AFW" / "AFW_synth_00000_0.mat"))
    back = crop_norm_to_points(recs[0]["points_norm"], recs[0]["box_xyxy"])
    np.testing.assert_allclose(back, mat["pt2d"].T - 0.5, atol=1e-3)
    np.testing.assert_allclose(recs[0]["pose_rad"], mat["Pose_Para"][0, :3], atol=1e-6)
    assert recs[0]["pose_estimated"] == 0 and recs[0]["attributes"].tolist() == [-1] * 6
    assert all((r["points_norm"] > 0).all() and (r["points_norm"] < 1).all() for r in recs)


def test_interrupted_conversion_resumes_and_matches_a_clean_run(synthetic_300wlp, tmp_path, monkeypatch):
    settings = ConvertSettings("300wlp", image_size=48, shard_size=8)
    clean = tmp_path / "clean"
    convert_dataset(str(synthetic_300wlp), str(clean), settings, progress=False)
    out = tmp_path / "resumed"
    real_write = shards_module.write_shard
    calls = []

    def write_then_die(output_dir, name, results, job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while the third shard is being written
        calls.append(name)
        return real_write(output_dir, name, results, job)

    monkeypatch.setattr(shards_module, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(str(synthetic_300wlp), str(out), settings, progress=False)
    assert not (out / "manifest.json").exists()
    assert sorted(n for n in os.listdir(out) if n.endswith(".tfrecord")) == calls
    first_mtime = os.path.getmtime(out / calls[0])
    monkeypatch.setattr(shards_module, "write_shard", lambda *a: calls.append(a[1]) or real_write(*a))
    convert_dataset(str(synthetic_300wlp), str(out), settings, progress=False)
    assert calls[2:] == ["300wlp-00002-of-00004.tfrecord", "300wlp-00003-of-00004.tfrecord"]
    assert os.path.getmtime(out / calls[0]) == first_mtime
    assert _shard_bytes(out) == _shard_bytes(clean)
    assert not (out / convert_module.PARTIAL_STATE).exists()
    # a finished conversion is reused; other settings in the same folder are refused
    assert convert_dataset(str(synthetic_300wlp), str(out), settings, progress=False)["num_records"] == 30
    with pytest.raises(ConversionError, match="other settings"):
        convert_dataset(str(synthetic_300wlp), str(out), ConvertSettings("300wlp", image_size=32), progress=False)


def _corrupt_copies(src_dir, dst, names):
    """Copy real .pts samples and damage all but the first in a different way each."""
    dst.mkdir()
    for n in names:
        shutil.copy(src_dir / f"{n}.pts", dst / f"{n}.pts")
        shutil.copy(src_dir / f"{n}.jpg", dst / f"{n}.jpg")
    good, truncated, garbage, short, nan, outside = names
    data = (dst / f"{truncated}.jpg").read_bytes()
    (dst / f"{truncated}.jpg").write_bytes(data[: len(data) // 2])
    (dst / f"{garbage}.jpg").write_bytes(b"\xff\xd8" + os.urandom(2000) + b"\xff\xd9")
    pts = read_pts(str(dst / f"{short}.pts"))
    (dst / f"{short}.pts").write_text("\n".join(f"{x} {y}" for x, y in pts[:60]))
    pts[10, 0] = np.nan
    (dst / f"{nan}.pts").write_text("\n".join(f"{x} {y}" for x, y in pts))
    pts = read_pts(str(dst / f"{outside}.pts"))
    pts[3] = [-40, 5]
    (dst / f"{outside}.pts").write_text("\n".join(f"{x} {y}" for x, y in pts))


@requires_shared
def test_corrupted_real_samples_are_skipped_and_reported(tmp_path):
    src = SHARED_DATA / "ibug68" / "afw"
    names = sorted(p[:-4] for p in os.listdir(src) if p.endswith(".pts"))[:6]
    _corrupt_copies(src, tmp_path / "raw", names)
    manifest = convert_dataset(str(tmp_path / "raw"), str(tmp_path / "out"), ConvertSettings("ibug68"),
                               progress=False)
    assert manifest["num_records"] == 1
    reasons = {s["source"]: s["reason"] for s in manifest["skipped"]}
    expected = ["truncated JPEG", "cannot decode image", "60 landmarks, the scheme has 68", "NaN",
                "1 landmarks outside the"]
    for name, text in zip(names[1:], expected):
        assert text in reasons[f"{name}.pts"] and name in reasons[f"{name}.pts"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["num_skipped"] == 5
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".tmp")]


def test_a_mat_without_keys_is_skipped(synthetic_300wlp, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_300wlp, raw)
    scipy.io.savemat(str(raw / "HELEN" / "HELEN_synth_00001_0.mat"), {"roi": np.zeros((1, 4))})
    manifest = convert_dataset(str(raw), str(tmp_path / "out"), ConvertSettings("300wlp"), progress=False)
    assert manifest["num_records"] == 29
    assert manifest["skipped"] == [{"source": "HELEN/HELEN_synth_00001_0.mat",
                                    "reason": f"{raw}/HELEN/HELEN_synth_00001_0.mat: .mat file has no pt2d, "
                                              "Pose_Para"}]


def test_nothing_converted_fails_and_leaves_nothing(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.pts").write_text("1 2\n3 4\n")
    (raw / "a.jpg").write_bytes(b"junk")
    out = tmp_path / "out"
    assert convert_main(["--format", "ibug68", "--input", str(raw), "--output", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "nothing converted: all 1 samples were skipped" in err and "a.pts" not in err.split("e.g.")[0]
    assert os.listdir(out) == []


def test_cli_errors_name_the_problem(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert convert_main(["--format", "ibug68", "--input", str(missing), "--output", str(tmp_path / "o")]) == 1
    assert f"{missing}: input folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert convert_main(["--format", "ibug68", "--input", str(tmp_path / "empty"), "--output",
                         str(tmp_path / "o")]) == 1
    assert "no ibug68 samples found" in capsys.readouterr().err
    assert convert_main(["--format", "300wlp", "--input", str(tmp_path / "empty"), "--output",
                         str(tmp_path / "o"), "--margin", "-1"]) == 1
    assert "margin must be in [0, 2], got -1.0" in capsys.readouterr().err


def test_split_list_selects_images(synthetic_300wlp, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("AFW/AFW_synth_00000_0.jpg\nHELEN/HELEN_synth_00001_0\n# comment\n")
    manifest = convert_dataset(str(synthetic_300wlp), str(tmp_path / "out"), ConvertSettings("300wlp"),
                               split_list=str(split), progress=False)
    assert manifest["num_records"] == 2
    split.write_text("nothing/like_this.jpg\n")
    with pytest.raises(ValueError, match="none of its 1 entries matches"):
        convert_dataset(str(synthetic_300wlp), str(tmp_path / "out2"), ConvertSettings("300wlp"),
                        split_list=str(split), progress=False)


def test_reduced_jpeg_decoding_matches_full_decoding(synthetic_300wlp):
    path = str(synthetic_300wlp / "HELEN" / "HELEN_synth_00001_0.jpg")
    full, hw = read_image(path)
    half, hw_half = read_image(path, 2)
    assert hw == hw_half == (450, 450) and half.shape == (225, 225, 3)
    box = np.array([100.0, 80.0, 340.0, 320.0])
    a = crop_and_resize(full, box, 112).astype(float)
    b = crop_and_resize(half, box / 2, 112).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
    assert psnr > 30, psnr
    ca = cv2.moments(cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_BGR2GRAY))
    cb = cv2.moments(cv2.cvtColor(b.astype(np.uint8), cv2.COLOR_BGR2GRAY))
    assert abs(ca["m10"] / ca["m00"] - cb["m10"] / cb["m00"]) < 0.1  # no half-pixel shift


@requires_shared
@pytest.mark.parametrize("subset", ["helen_train", "afw", "helen_test"])
def test_real_ibug68_maps_back_to_annotations(subset, tmp_path):
    src = SHARED_DATA / "ibug68" / subset
    manifest = convert_dataset(str(src), str(tmp_path), ConvertSettings("ibug68"), workers=2, progress=False)
    num_faces = len([p for p in os.listdir(src) if p.endswith(".pts")])
    assert manifest["num_records"] == num_faces and manifest["num_skipped"] == 0
    worst = 0.0
    for rec in read_records(str(tmp_path), decode_image=False):
        annotated = read_pts(str(src / rec["source_id"].decode()).replace(".jpg", ".pts"))
        back = crop_norm_to_points(rec["points_norm"], rec["box_xyxy"]) + 0.5  # to .pts' 1-based centres
        worst = max(worst, np.abs(back - annotated).max())
    assert worst < 0.5 and worst < 1e-3  # exact up to float32 storage


def test_five_point_conversion_keeps_the_crop_and_averages_the_eyes(synthetic_300wlp, tmp_path):
    full = convert_dataset(synthetic_300wlp, str(tmp_path / "all"), ConvertSettings("300wlp"), progress=False)
    five = convert_dataset(synthetic_300wlp, str(tmp_path / "five"), ConvertSettings("300wlp", points="five"),
                           progress=False)
    assert (full["scheme"], full["num_points"], five["scheme"], five["num_points"]) == ("ibug68", 68, "five", 5)
    for a, b in zip(read_records(str(tmp_path / "all"), False), read_records(str(tmp_path / "five"), False)):
        np.testing.assert_array_equal(a["box_xyxy"], b["box_xyxy"])  # cropped as the full markup frames the face
        dense = a["points_norm"]
        np.testing.assert_allclose(b["points_norm"][0], dense[36:42].mean(0), atol=1e-6)  # right eye's centre
        np.testing.assert_allclose(b["points_norm"][2:], dense[[30, 48, 54]], atol=1e-6)  # nose tip, mouth corners
    with pytest.raises(ValueError, match="points must be one of"):
        ConvertSettings("300wlp", points="three")


@requires_shared
def test_real_aflw2000_maps_back_and_keeps_pose(tmp_path):
    src = SHARED_DATA / "aflw2000_sample"
    manifest = convert_dataset(str(src), str(tmp_path), ConvertSettings("aflw2000", image_size=128),
                               progress=False)
    assert manifest["num_records"] == 16
    for rec in read_records(str(tmp_path)):
        mat = scipy.io.loadmat(str(src / rec["source_id"].decode()).replace(".jpg", ".mat"))
        back = crop_norm_to_points(rec["points_norm"], rec["box_xyxy"]) + 0.5
        np.testing.assert_allclose(back, mat["pt3d_68"][:2].T, atol=1e-3)
        np.testing.assert_allclose(rec["pose_rad"], mat["Pose_Para"][0, :3], atol=1e-6)
        assert rec["image"].shape == (128, 128, 3)


def test_points_outside_the_photo_are_kept_for_300wlp_and_skipped_on_request(synthetic_300wlp, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_300wlp, raw)
    path = str(raw / "HELEN" / "HELEN_synth_00001_0.mat")
    mat = scipy.io.loadmat(path)
    mat["pt2d"][:, 0] = [-11.5, 40.5]  # jaw point 0 at x = -12 (0-based): 12 px left of the 450 x 450 photo
    scipy.io.savemat(path, {k: v for k, v in mat.items() if not k.startswith("__")})
    kept = convert_dataset(str(raw), str(tmp_path / "keep"), ConvertSettings("300wlp"), progress=False)
    assert kept["outside"] == "keep" and kept["num_records"] == 30 and kept["faces_with_points_outside_image"] == 1
    rec = next(r for r in read_records(str(tmp_path / "keep")) if r["source_id"].decode().endswith("00001_0.jpg"))
    np.testing.assert_allclose(crop_norm_to_points(rec["points_norm"], rec["box_xyxy"])[0], [-12, 40], atol=1e-3)
    assert (rec["image"][:, :2] == 0).all()  # the crop reaches past the photo's left edge: zero padding
    skipped = convert_dataset(str(raw), str(tmp_path / "skip"), ConvertSettings("300wlp", outside="skip"),
                              progress=False)
    assert skipped["num_records"] == 29 and skipped["faces_with_points_outside_image"] == 0
    assert "1 landmarks outside the 450x450 image" in skipped["skipped"][0]["reason"]
    assert ConvertSettings("ibug68").outside == "skip" and ConvertSettings("aflw2000").outside == "keep"
    with pytest.raises(ValueError, match="outside must be one of"):
        ConvertSettings("300wlp", outside="clip")


@requires_shared
def test_real_mtfl_five_points_and_estimated_pose(tmp_path):
    src = SHARED_DATA / "mtfl_train"
    split = tmp_path / "split.txt"
    lines = (src / "training.txt").read_text().splitlines()
    split.write_text("\n".join(line.split()[0].replace("\\", "/") for line in lines[:40]))
    settings = ConvertSettings("mtfl", reader=ReaderOptions())
    manifest = convert_dataset(str(src), str(tmp_path / "out"), settings, split_list=str(split), progress=False)
    assert manifest["scheme"] == "five" and manifest["num_records"] + manifest["num_skipped"] == 40
    recs = read_records(str(tmp_path / "out"), decode_image=False)
    assert all(r["pose_estimated"] == 1 for r in recs)
    assert np.median([abs(r["pose_rad"][1]) for r in recs]) < np.radians(30)
