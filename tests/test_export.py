"""Freeze stage: Keras vs SavedModel vs TFLite parity, no training-only outputs, clear errors, the TF-free runtime,
the predict CLI, and the One-Euro filter."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import models  # noqa: F401
from facekit.alignment import data
from facekit.alignment.export import export_run, serving_model
from facekit.codecs import make_codec
from facekit.config import load_config
from facekit.export import convert_tflite
from facekit.geometry import crop_norm_to_points, landmark_box_xyxy
from facekit.infer.runtime import LandmarkPredictor, OneEuroFilter, run_tflite
from facekit.registry import get_spec, names_for_task
from facekit.training import load_run
from tests.conftest import SHARED_DATA, requires_shared

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "training", "configs")


def untrained_run(name, splits, root, **model_args):
    """A run folder holding a freshly initialised model of `name` (what export needs, without training);
    model_args override its config's."""
    spec = get_spec(name)
    config = load_config(os.path.join(CONFIGS, spec.config))
    config.model_args.update(model_args)
    points = data.read_annotations([splits[0]])["points_norm"]
    codec = make_codec(spec.codec, 68, points, **config.codec_args)
    network = spec.build(68, **codec.build_args, **config.model_args)
    run = os.path.join(root, name)
    os.makedirs(run)
    network.save(os.path.join(run, "best.keras"))
    with open(os.path.join(run, "codec.json"), "w") as f:
        json.dump(codec.to_dict(), f)
    import yaml
    with open(os.path.join(run, "config.yaml"), "w") as f:
        yaml.safe_dump(config.to_dict(), f)
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({"train_dirs": [splits[0]], "val_dirs": [splits[1]]}, f)
    return run


@pytest.mark.parametrize("name", names_for_task("landmarks"))
def test_float32_parity_for_every_model(name, synthetic_splits, tmp_path):
    run = untrained_run(name, synthetic_splits, str(tmp_path))
    report = export_run(run, str(tmp_path / "export"), ["saved_model", "tflite_fp32"], parity_count=8)
    size = report["input_size"]
    for fmt in ("saved_model", "tflite_fp32"):
        assert report["artifacts"][fmt]["max_abs_diff_px"] <= 1e-4 * size, (fmt, report["artifacts"][fmt])
    # random crops too, not only faces
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    network, codec, _ = load_run(run)
    keras_px = serving_model(network, codec, get_spec(name).training_only_outputs).predict_on_batch(images)
    tflite_px = run_tflite(str(tmp_path / "export" / f"{name}_fp32.tflite"), images)
    assert tflite_px.shape == (3, 68, 2)
    np.testing.assert_allclose(tflite_px, keras_px["landmarks"], atol=1e-4 * size)


def test_exported_pfld_has_no_pose_output(synthetic_splits, tmp_path):
    run = untrained_run("pfld_025", synthetic_splits, str(tmp_path), pose_subnet=True)
    network, codec, _ = load_run(run)
    assert set(network.output) == {"landmarks", "pose"}
    model = serving_model(network, codec, get_spec("pfld_025").training_only_outputs)
    assert list(model.output) == ["landmarks"]
    import tensorflow as tf
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    outputs = tf.saved_model.load(str(tmp_path / "sm")).signatures["serve"].structured_outputs
    assert list(outputs) == ["landmarks"]


def test_all_formats_on_a_trained_run_within_bars(trained_run, tmp_path):
    report = export_run(trained_run, str(tmp_path / "export"), parity_count=48)
    assert report["parity_ok"] and set(report["artifacts"]) == {"saved_model", "tflite_fp32", "tflite_fp16",
                                                                 "tflite_int8"}
    keras_nme = report["keras"]["nme"]
    assert abs(report["artifacts"]["tflite_fp16"]["nme"] - keras_nme) <= 0.0005
    assert abs(report["artifacts"]["tflite_int8"]["nme"] - keras_nme) <= 0.005
    sizes = {f: a["bytes"] for f, a in report["artifacts"].items()}
    assert sizes["tflite_int8"] < sizes["tflite_fp16"] < sizes["tflite_fp32"]
    assert json.load(open(tmp_path / "export" / "report.json"))["parity_ok"] is True
    sidecar = json.load(open(tmp_path / "export" / "senet_fp32.json"))
    assert sidecar["jaw_convention"] == "visible outline"  # synthetic 300W-LP, pt2d


def test_jaw_convention_follows_the_records_source():
    from facekit.records.manifest import jaw_convention

    def manifest(fmt, source="pt2d", points="all", scheme="ibug68"):
        return {"format": fmt, "scheme": scheme,
                "fingerprint": {"settings": {"points": points, "reader": {"landmarks_source": source}}}}

    assert [jaw_convention(manifest(*args)) for args in (
        ("ibug68",), ("300wlp",), ("300wlp", "pts_2d"), ("300wlp", "pts_3d"), ("aflw2000",),
        ("ibug68", "pt2d", "five"), ("mtfl", "pt2d", "all", "five"))] == [
        "visible outline", "visible outline", "visible outline", "3D keypoints", "3D keypoints", "none", "none"]


def test_unsupported_op_fails_at_conversion_with_its_name(tmp_path):
    import keras
    import tensorflow as tf

    class Erfinv(keras.layers.Layer):
        def call(self, x):
            return tf.math.erfinv(x)

    inputs = keras.Input((4,))
    keras.Model(inputs, Erfinv()(inputs)).export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    with pytest.raises(ValueError, match="no TFLite builtin op for Erfinv"):
        convert_tflite(str(tmp_path / "sm"), "fp32")


def test_runtime_does_not_import_tensorflow():
    code = "import sys, facekit.infer.runtime; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export"))
    export_run(trained_run, out, ["tflite_fp32"], parity_count=8)
    return os.path.join(out, "senet_fp32.tflite")


def test_predictor_crops_like_the_converter(exported, trained_run, synthetic_splits):
    """Predicting on the raw image with the landmark box equals the Keras model on the converted crop."""
    from facekit.records.schema import read_records

    record = read_records(synthetic_splits[1])[0]
    network, codec, _ = load_run(trained_run)
    model = serving_model(network, codec)
    size = model.input_shape[1]
    crop = cv2.resize(record["image"], (size, size), interpolation=cv2.INTER_AREA)
    keras_px = crop_norm_to_points(model.predict_on_batch(crop[None])["landmarks"][0] / size, record["box_xyxy"])
    raw_root = os.path.join(os.path.dirname(synthetic_splits[1]), "val_raw")
    image_path = os.path.join(raw_root, record["source_id"].decode())
    image = cv2.imread(image_path if os.path.exists(image_path) else image_path + ".jpg")
    true_px = crop_norm_to_points(record["points_norm"], record["box_xyxy"])
    predictor = LandmarkPredictor(exported)
    # the converter snaps boxes to its reduced-JPEG-decode grid (here 2 px); the runtime decodes fully
    assert np.abs(predictor.crop_boxes(landmark_box_xyxy(true_px)[None])[0] - record["box_xyxy"]).max() <= 1
    points = predictor.predict(image, [landmark_box_xyxy(true_px), landmark_box_xyxy(true_px)], color="bgr")
    assert points.shape == (2, 68, 2)
    crop_side = record["box_xyxy"][2] - record["box_xyxy"][0]
    assert np.abs(points[0] - keras_px).max() < 0.02 * crop_side   # JPEG re-encoding and resize order differ
    rgb = predictor.predict(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), landmark_box_xyxy(true_px), color="rgb")
    np.testing.assert_allclose(rgb[0], points[0], atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(image.astype(np.float32), landmark_box_xyxy(true_px))


def test_predict_cli_draws_images_and_videos(exported, tmp_path):
    from freeze import predict

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "face.jpg"), image)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(5):
        writer.write(image)
    writer.release()
    (tmp_path / "boxes.txt").write_text("face.jpg 40 20 120 100\n")
    out = tmp_path / "out"
    rc = predict.main([str(tmp_path / "face.jpg"), str(tmp_path / "clip.avi"), "--landmarks", exported,
                       "--boxes", str(tmp_path / "boxes.txt"), "--out", str(out)])
    assert rc == 0
    drawn = cv2.imread(str(out / "face.png"))
    assert drawn.shape == image.shape and np.abs(drawn.astype(int) - image).sum() > 0
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    (tmp_path / "bad.txt").write_text("face.jpg 1 2 3\n")
    assert predict.main([str(tmp_path / "face.jpg"), "--landmarks", exported, "--boxes", str(tmp_path / "bad.txt"),
                         "--out", str(out)]) == 2


def test_one_euro_filter_smooths_still_noise_and_follows_steps():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    t = np.arange(120) / 30.0
    noisy = 50.0 + rng.normal(0, 1.0, (120, 68, 2))
    smoothed = np.stack([f(x, ti) for x, ti in zip(noisy, t)])
    assert smoothed[30:].std() < 0.5 * noisy[30:].std()
    f.reset()
    steps = np.where(t[:, None, None] < 2.0, 0.0, 100.0) * np.ones((120, 68, 2))
    followed = np.stack([f(x, ti) for x, ti in zip(steps, t)])
    assert np.allclose(followed[0], 0.0) and abs(followed[-1].mean() - 100.0) < 1.0


@requires_shared
def test_parity_on_real_face_crops(synthetic_splits, tmp_path):
    from facekit.records.convert import ConvertSettings, convert_dataset

    afw = SHARED_DATA / "ibug68" / "afw"
    names = sorted(p.stem for p in afw.glob("*.pts"))[:12]
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    real = str(tmp_path / "afw12")
    convert_dataset(str(afw), real, ConvertSettings(format="ibug68", image_size=112), workers=1,
                    split_list=str(tmp_path / "list.txt"), progress=False)
    run = untrained_run("pfld_025", synthetic_splits, str(tmp_path))
    report = export_run(run, str(tmp_path / "export"), ["saved_model", "tflite_fp32", "tflite_fp16"],
                        val_dirs=[real], parity_count=12)
    assert report["parity_images"] == 12 and report["parity_ok"]
    assert report["artifacts"]["tflite_fp32"]["max_abs_diff_px"] <= 1e-4 * 112


def test_export_rebuilds_the_network_from_config_in_float32(trained_run):
    import keras

    from facekit.export import rebuild_float32

    rebuilt, _, config, spec = rebuild_float32(trained_run)
    saved, _, _ = load_run(trained_run)
    assert spec.name == "senet" and rebuilt.dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict_on_batch(images)["landmarks"],
                                  saved.predict_on_batch(images)["landmarks"])
