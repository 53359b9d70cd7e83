"""DBFace and the detection half: records, conversion, scene pipeline, losses, models, training, export, runtime."""
import json
import math
import os
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

import models  # noqa: F401
from facekit import losses
from facekit.config import AugmentConfig
from facekit.detection.convert import DetectionSettings
from facekit.detection.data import compose_canvas, evaluation_scenes, write_mosaic_photos
from facekit.infer.detections import Detections
from facekit.landmarks import FIVE, IBUG68, face_box_xyxy, five_from_ibug68
from facekit.records import schema
from facekit.records.convert import convert_dataset
from facekit.registry import names_for_task
from models.dbface import build_dbface
from tests.conftest import SHARED_DATA, requires_shared

# trainable parameters; the reference Small-H with has_ext and landmarks has 436,307 (measured on its PyTorch code)
TRAINABLE = {"dbface_small": 436_307, "dbface": 1_794_219, "dbface_nano": 209_059}
STRIDE = {"dbface_small": 4, "dbface": 4, "dbface_nano": 8}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_every_centernet_model_is_covered():
    assert {n for n in names_for_task("detection") if n.startswith("dbface")} == set(TRAINABLE)


@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_parameter_counts_and_outputs_at_the_stride_of_any_multiple_of_32(name):
    model = build_dbface(name)
    assert trainable_count(model) == TRAINABLE[name]
    out = model.predict_on_batch(np.zeros((1, 64, 96, 3), np.float32))
    h, w = 64 // STRIDE[name], 96 // STRIDE[name]
    assert {k: v.shape for k, v in out.items()} == {"heatmap": (1, h, w, 1), "box": (1, h, w, 4),
                                                    "landmarks": (1, h, w, 10)}
    assert np.all((out["heatmap"] > 0) & (out["heatmap"] < 1)) and np.all(out["box"] > 0)
    np.testing.assert_allclose(out["heatmap"], 0.01, atol=0.005)  # the prior of the heatmap bias


def test_focal_loss_by_hand():
    # two cells: a face centre (y = 1, p = 0.5, weight 2) and background (y = 0.5, p = 0.2); one face
    heatmap = tf.constant([0.5, 0.2])[None, :, None, None]
    target = tf.constant([1.0, 0.5])[None, :, None, None]
    weight = tf.constant([2.0, 0.0])[None, :, None, None]
    keep = tf.ones_like(heatmap)
    expected = -(math.log(0.5) * 0.25 * 2) - math.log(0.8) * 0.04 * 0.5 ** 4
    assert float(losses.centernet_focal_loss(heatmap, target, weight, keep, 1.0)) == pytest.approx(expected, 1e-5)
    assert float(losses.centernet_focal_loss(heatmap, target, weight, keep * 0, 1.0)) == 0.0  # ignored cells


def test_giou_by_hand():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    assert float(losses.giou(a, a)[0]) == pytest.approx(1.0)
    # overlap 1, union 7, hull 9 -> 1/7 - 2/9
    assert float(losses.giou(a, tf.constant([[1.0, 1.0, 3.0, 3.0]]))[0]) == pytest.approx(1 / 7 - 2 / 9, 1e-6)
    # disjoint: union 2, hull (0..3) x (0..1) = 3 -> 0 - 1/3
    assert float(losses.giou(tf.constant([[0.0, 0, 1, 1]]), tf.constant([[2.0, 0, 3, 1]]))[0]) == \
        pytest.approx(-1 / 3, 1e-6)
    mask = tf.constant([[1.0], [0.0]])
    boxes = tf.constant([[0.0, 0, 2, 2], [0.0, 0, 1, 1]])
    assert float(losses.giou_loss(boxes, tf.constant([[1.0, 1, 3, 3], [5.0, 5, 6, 6]]), mask)) == \
        pytest.approx(1 - (1 / 7 - 2 / 9), 1e-6)
    # weighted: the second pair is disjoint, union 2, hull 6 x 6 -> GIoU -34/36
    weights = tf.constant([[0.25], [0.75]])
    assert float(losses.giou_loss(boxes, tf.constant([[1.0, 1, 3, 3], [5.0, 5, 6, 6]]), weights)) == \
        pytest.approx(0.25 * (1 - (1 / 7 - 2 / 9)) + 0.75 * (1 + 34 / 36), 1e-6)


def test_detection_record_round_trip_with_and_without_faces():
    boxes = np.array([[1.5, 2.0, 30.0, 40.0], [50, 60, 70, 90]], np.float32)
    marks = np.full((2, 5, 2), np.nan, np.float32)
    marks[0] = np.arange(10).reshape(5, 2)
    flags = np.array([[0, 1, 0, 0, 2, 0], [-1] * 6])
    image = cv2.imencode(".png", np.full((100, 80, 3), 7, np.uint8))[1].tobytes()
    for count in (2, 0):
        record = schema.DetectionRecord("a/b.png", image, (100, 80), boxes[:count], marks[:count], flags[:count], [])
        parsed = {k: v.numpy() for k, v in schema.parse_detection_example(
            tf.constant(schema.encode_detection_example(record))).items()}
        np.testing.assert_array_equal(parsed["boxes_xyxy"], boxes[:count])
        np.testing.assert_array_equal(parsed["landmarks_px"], marks[:count])
        np.testing.assert_array_equal(parsed["flags"], flags[:count])
        assert parsed["image"].shape == (100, 80, 3) and parsed["image"].max() == 7
        assert parsed["source_id"] == b"a/b.png" and list(parsed["source_hw"]) == [100, 80]


def test_five_point_face_box_matches_the_68_point_rule():
    rng = np.random.default_rng(0)
    from facekit.records.synthetic import random_face_3d

    faces = [random_face_3d(rng)[:, :2] * 0.8 + 200 for _ in range(20)]
    from facekit.boxes import box_iou
    ious = [box_iou(face_box_xyxy(p, IBUG68)[None], face_box_xyxy(five_from_ibug68(p), FIVE)[None])[0, 0]
            for p in faces]
    assert min(ious) > 0.6
    box = face_box_xyxy(np.array([[0.0, 0.0], [10.0, 20.0]]), IBUG68)
    np.testing.assert_allclose(box, [0, -4, 10, 20])  # top raised by 20% of the height


def write_label(root, lines):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for name in {line[2:] for line in lines if line.startswith("#")}:
        cv2.imwrite(os.path.join(root, "images", name), np.full((120, 160, 3), 90, np.uint8))
    with open(os.path.join(root, "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def test_conversion_keeps_good_faces_and_lists_the_others(tmp_path):
    write_label(str(tmp_path / "raw"), [
        "# a.jpg",
        "10 10 40 50 20 25 0.0 40 25 0.0 30 35 0.0 22 45 0.0 38 45 0.0 1.0",  # good, with points
        "100 20 3 3 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 1.0",      # 3 x 3: under 16 px^2
        "300 300 20 20",                                                    # outside the 160 x 120 image
        "150 100 30 40",                                                    # clipped to 10 x 20
        "# b.jpg"])                                                         # no faces: a negative
    out = str(tmp_path / "rec")
    manifest = convert_dataset(str(tmp_path / "raw" / "images"), out, DetectionSettings(
        "retinaface", annotations=str(tmp_path / "raw" / "label.txt")), progress=False)
    assert manifest["task"] == "detection" and manifest["num_records"] == 2 and manifest["num_faces"] == 2
    assert manifest["dropped_faces_by_reason"] == {"face under 16 px²": 1, "box outside the image": 1}
    assert os.path.exists(os.path.join(out, "preview.jpg"))
    scenes = evaluation_scenes([out])
    np.testing.assert_allclose(scenes[0]["boxes_xyxy"], [[10, 10, 50, 60], [150, 100, 160, 120]])
    assert np.isfinite(scenes[0]["landmarks_px"][0]).all() and np.isnan(scenes[0]["landmarks_px"][1]).all()
    assert len(scenes[1]["boxes_xyxy"]) == 0
    with pytest.raises(ValueError, match="holds detection records"):
        schema.load_manifest(out, task="landmarks")


def test_large_images_are_resized_with_their_faces(tmp_path):
    root = tmp_path / "raw"
    os.makedirs(root / "images")
    cv2.imwrite(str(root / "images" / "big.png"), np.zeros((400, 1000, 3), np.uint8))
    (root / "label.txt").write_text("# big.png\n100 100 200 100\n")
    out = str(tmp_path / "rec")
    convert_dataset(str(root / "images"), out, DetectionSettings("retinaface", max_side=500,
                                                                 annotations=str(root / "label.txt")), progress=False)
    scene = evaluation_scenes([out])[0]
    assert scene["image"].shape == (200, 500, 3)
    np.testing.assert_allclose(scene["boxes_xyxy"], [[50, 50, 150, 100]])


def bright_square_scene(flip_only=False):
    """One 100 x 100 image, black with a white face box (30..70); its points: eyes at y 40, x 40 / 60, the nose
    at x 45 (so a flip shows: the nose moves right of the eyes' middle)."""
    image = np.zeros((4, 100, 100, 3), np.uint8)
    image[0, 30:70, 30:70] = 255
    boxes = np.zeros((4, 1, 4), np.float32)
    boxes[0, 0] = [30, 30, 70, 70]
    marks = np.full((4, 1, 5, 2), np.nan, np.float32)
    marks[0, 0] = [[40, 40], [60, 40], [45, 50], [42, 60], [58, 60]]  # nose left of the eyes' middle
    config = AugmentConfig(rotation_deg=0 if flip_only else 45, rotation_p=1.0, mosaic=0.0, face_size=(30, 60),
                           color_jitter=False, grey=0.0)
    return image, boxes, marks, config


@pytest.mark.parametrize("seed", range(6))
def test_boxes_and_points_follow_the_image(seed):
    image, boxes, marks, config = bright_square_scene()
    out = compose_canvas(tf.constant(image), tf.constant(boxes), tf.constant(marks), tf.constant([[100, 100]] * 4),
                         tf.constant([seed, 3]), 128, config)
    canvas, box = out["image"].numpy(), out["boxes_xyxy"].numpy()[0]
    assert box[2] > box[0]
    x0, y0, x1, y1 = np.round(box).astype(int)
    inner = canvas[y0 + 3:y1 - 3, x0 + 3:x1 - 3]
    if inner.size:  # the box's middle is the white square (the ellipse rule keeps rotated boxes tight)
        assert inner.mean() > 200
    points = out["landmarks_px"].numpy()[0]
    if np.isfinite(points).all():  # each point stays inside the white square and the box
        assert all(canvas[int(y), int(x)].mean() > 200 for x, y in points)


def test_a_flip_swaps_eyes_and_mouth_corners():
    image, boxes, marks, config = bright_square_scene(flip_only=True)
    flips, seen = 0, 0
    for seed in range(16):
        out = compose_canvas(tf.constant(image), tf.constant(boxes), tf.constant(marks),
                             tf.constant([[100, 100]] * 4), tf.constant([seed, 0]), 128, config)
        points = out["landmarks_px"].numpy()[0]
        if np.isnan(points).any():  # a point left the canvas: the face keeps no points
            continue
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # image-left first, flipped or not
        flips += points[2, 0] > (points[0, 0] + points[1, 0]) / 2
        seen += 1
    assert seen >= 8 and 0 < flips < seen


def test_mosaic_puts_four_images_in_four_tiles():
    image = np.zeros((4, 60, 60, 3), np.uint8)
    boxes = np.zeros((4, 1, 4), np.float32)
    for k in range(4):
        image[k, 20:40, 20:40] = 60 * (k + 1)
        boxes[k, 0] = [20, 20, 40, 40]
    config = AugmentConfig(rotation_p=0.0, mosaic=1.0, face_size=(20, 30), color_jitter=False, grey=0.0, flip=False)
    out = compose_canvas(tf.constant(image), tf.constant(boxes), tf.fill([4, 1, 5, 2], np.nan), tf.constant(
        [[60, 60]] * 4), tf.constant([1, 2]), 128, config)
    kept = out["boxes_xyxy"].numpy()
    kept = kept[kept[:, 2] > kept[:, 0]]
    centres = (kept[:, :2] + kept[:, 2:]) / 2
    values = {int(round(out["image"].numpy()[int(y), int(x)].mean())) for x, y in centres}
    assert len(kept) >= 3 and len(values) == len(kept)  # distinct images, one per tile


def test_mosaic_photos_hold_their_faces_at_the_asked_sizes(synthetic_scene_records, tmp_path):
    from facekit.records.datasets.wider import read_retinaface_labels

    root = str(tmp_path / "mosaics")
    faces = write_mosaic_photos([synthetic_scene_records[1]], root, count=3, size=320, face_size=(40, 80))
    photos = read_retinaface_labels(os.path.join(root, "label.txt"))
    assert [p.path for p in photos] == ["mosaic_0000.jpg", "mosaic_0001.jpg", "mosaic_0002.jpg"]
    assert sum(len(p.boxes_xyxy) for p in photos) == faces >= 6
    for photo in photos:
        image = cv2.imread(os.path.join(root, "images", photo.path))
        assert image.shape == (320, 320, 3)
        boxes = photo.boxes_xyxy
        assert (boxes >= -0.01).all() and (boxes <= 320.01).all()
        whole = boxes[(boxes[:, 0] > 1) & (boxes[:, 1] > 1) & (boxes[:, 2] < 319) & (boxes[:, 3] < 319)]
        # one face per tile was scaled into 40-80 px; its neighbours keep their ratio to it (28-110 px drawn)
        assert (np.sqrt(np.prod(whole[:, 2:] - whole[:, :2], axis=1)) < 80 * 110 / 28).all()
        marks = photo.landmarks_px
        marked = np.isfinite(marks).all(axis=(1, 2))  # a face whose points left its tile keeps none
        low, high = boxes[marked, None, :2] - 1, boxes[marked, None, 2:] + 1
        assert ((marks[marked] >= low) & (marks[marked] <= high)).all()
    assert sum(np.isfinite(p.landmarks_px).all(axis=(1, 2)).sum() for p in photos) >= 3


def test_five_point_flip_permutation_is_the_reference_one():
    assert list(FIVE.flip_permutation) == [1, 0, 2, 4, 3]


def test_detections_type_is_shared_by_every_detector():
    from facekit.infer import detector, mtcnn

    assert detector.Detections is mtcnn.Detections is Detections


SMALL_RUN = ["data.image_size=128", "data.batch_size=8", "train.val_size=320", "schedule.warmup_steps=20",
             "schedule.lr=0.003", "augment.rotation_p=0.2", "augment.mosaic=0.3", "augment.face_size=[16, 96]"]


def train_run(records_dirs, run: str, epochs: int, steps: int, *overrides, model: str = "dbface_small") -> str:
    from training import train

    assert train.main(["--model", model, "--data", records_dirs[0], "--val-data", records_dirs[1], "--out",
                       run, "--epochs", str(epochs), "--set", f"train.steps_per_epoch={steps}", *SMALL_RUN,
                       *overrides]) == 0
    return run


EASY = ["augment.mosaic=0.0", "augment.rotation_p=0.0", "augment.face_size=[24, 96]", "train.val_size=256"]


@pytest.fixture(scope="module")
def trained_detector_run(synthetic_scene_records, tmp_path_factory):
    """dbface_small after 300 steps on 128 x 128 canvases of the synthetic scenes (whole scenes, no rotation),
    shared by the learning, export and runtime tests so that their AP comparisons and found faces are real. The
    run is repeatable for a seed; over seeds 0, 1, 2 best validation AP read 0.56, 0.61, 0.65 (first epoch 0.01-0.04)
    and 59-71% of faces were found at score 0.3. 160 steps were too few: AP 0.11-0.38 over seeds, and at score
    0.3 seed 0 found 6% of the faces."""
    return train_run(synthetic_scene_records, str(tmp_path_factory.mktemp("runs") / "trained"), 6, 50, *EASY)


def test_dbface_learns_on_synthetic_scenes(trained_detector_run, synthetic_scene_records):
    from facekit.boxes import box_iou
    from facekit.detection.dbface.training import detect_scenes, peaks_function
    from facekit.export import rebuild_float32

    metrics = json.load(open(os.path.join(trained_detector_run, "metrics.json")))
    history = metrics["history"]
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert metrics["best_val_ap"] > 0.3 and metrics["best_val_ap"] > 2 * history["val_ap"][0], history["val_ap"]
    network, codec, _, _ = rebuild_float32(trained_detector_run)
    scenes = evaluation_scenes([synthetic_scene_records[1]])
    found = detect_scenes(peaks_function(network, codec), scenes, 256, 0.3)
    hits = np.concatenate([box_iou(s["boxes_xyxy"], d.boxes_xyxy).max(axis=1) >= 0.5 if len(d) else
                           np.zeros(len(s["boxes_xyxy"]), bool) for s, d in zip(scenes, found)])
    assert hits.mean() > 0.35, hits.mean()  # faces found at IoU 0.5 and score 0.3


def test_tflite_export_matches_keras_and_the_runtime_finds_the_faces(trained_detector_run, synthetic_scene_records,
                                                                     tmp_path):
    from facekit.boxes import box_iou
    from facekit.detection.dbface.export import export_detector_run
    from facekit.detection.dbface.training import detect_scenes, peaks_function
    from facekit.export import rebuild_float32
    from facekit.infer.detector import FaceDetector

    out = str(tmp_path / "export")
    report = export_detector_run(trained_detector_run, out, ["saved_model", "tflite_fp32", "tflite_fp16",
                                                             "tflite_int8"], size=256)
    assert report["keras"]["ap"] > 0.2  # the AP comparisons below compare real detections, not 0 with 0
    assert report["parity_ok"] and report["artifacts"]["saved_model"]["max_box_diff_px"] < 1e-3
    assert report["artifacts"]["tflite_fp32"]["max_box_head_diff_px"] < 1e-3
    assert abs(report["artifacts"]["tflite_fp32"]["ap"] - report["keras"]["ap"]) < 1e-3
    assert abs(report["artifacts"]["tflite_fp16"]["ap"] - report["keras"]["ap"]) <= 0.01
    assert abs(report["artifacts"]["tflite_int8"]["ap"] - report["keras"]["ap"]) <= 0.03
    assert json.load(open(os.path.join(out, "dbface_small_fp32.json")))["input_size"] == 256
    detector = FaceDetector(os.path.join(out, "dbface_small_fp32.tflite"))
    scenes = evaluation_scenes([synthetic_scene_records[1]])
    network, codec, _, _ = rebuild_float32(trained_detector_run)
    in_keras = detect_scenes(peaks_function(network, codec), scenes, 256, detector.score_threshold)
    found_by = {"runtime": [], "keras": []}
    for scene, keras_found in zip(scenes, in_keras):
        found = detector.detect(np.ascontiguousarray(scene["image"][..., ::-1]), color="bgr")
        assert isinstance(found, Detections) and found.landmarks_px.shape == (len(found), 5, 2)
        for name, detections in (("runtime", found), ("keras", keras_found)):
            found_by[name] += list(box_iou(scene["boxes_xyxy"], detections.boxes_xyxy).max(axis=1) >= 0.5
                                   if len(detections) else np.zeros(len(scene["boxes_xyxy"]), bool))
    assert np.mean(found_by["runtime"]) > 0.35, np.mean(found_by["runtime"])  # true faces at IoU 0.5, its cut-off
    assert abs(sum(found_by["runtime"]) - sum(found_by["keras"])) <= 1  # the phone runtime finds what Keras finds
    bgr = np.ascontiguousarray(scenes[0]["image"][..., ::-1])
    with pytest.raises(ValueError, match="color"):
        detector.detect(bgr, color="RGB")


@pytest.fixture(scope="module")
def tiny_nano_run(synthetic_scene_records, tmp_path_factory):
    """dbface_nano after two training steps on 64 x 64 canvases."""
    return train_run(synthetic_scene_records, str(tmp_path_factory.mktemp("runs") / "nano"), 1, 2,
                     "data.image_size=64", model="dbface_nano")


def test_nano_exports_with_parity_at_the_letterbox_its_validation_picked(tiny_nano_run, tmp_path):
    from facekit.detection.dbface.export import export_detector_run
    from facekit.infer.detector import FaceDetector

    metrics = json.load(open(os.path.join(tiny_nano_run, "metrics.json")))
    assert set(metrics["letterbox_ap"]) == {"160", "192", "224", "256", "320", "416", "512", "640"}
    best = max(metrics["letterbox_ap"].values())
    assert metrics["letterbox_ap"][str(metrics["letterbox"])] >= best - 0.005
    report = export_detector_run(tiny_nano_run, str(tmp_path / "export"), ["tflite_fp32"])
    assert report["input_size"] == metrics["letterbox"] and report["parity_ok"]
    assert report["artifacts"]["tflite_fp32"]["max_box_head_diff_px"] < 1e-3
    assert FaceDetector(str(tmp_path / "export" / "dbface_nano_fp32.tflite")).size == metrics["letterbox"]


def test_an_int8_nano_keeps_its_landmark_head_and_decode_in_float(tiny_nano_run, tmp_path):
    """Box-coded points survive int8: the landmark head and the decode stay float32 (selective quantization),
    the rest of the network is int8."""
    from ai_edge_litert.interpreter import Interpreter

    from facekit.detection.dbface.export import export_detector_run
    from facekit.export import ParityError

    try:
        export_detector_run(tiny_nano_run, str(tmp_path / "export"), ["tflite_int8"])
    except ParityError:  # two training steps: the AP bar is not this test's concern
        pass
    tensors = Interpreter(str(tmp_path / "export" / "dbface_nano_int8.tflite")).get_tensor_details()
    kinds = {}
    for t in tensors:
        if len(t["shape"]) == 4 and t["shape"][1] > 1:  # feature maps
            part = "landmarks_head" if "landmarks_head" in t["name"] else "box_head" if "box_head" in t["name"] \
                else None
            if part:
                kinds.setdefault(part, set()).add(t["dtype"].__name__)
    assert kinds == {"landmarks_head": {"float32"}, "box_head": {"int8"}}, kinds
    assert any("/decode" in t["name"] and t["dtype"].__name__ == "float32" for t in tensors)


def test_the_frontier_script_measures_every_point(tiny_nano_run, synthetic_scene_records, tmp_path, capsys):
    """benchmarks/detector_frontier.py on a tiny synthetic set: every point measured, the table and the picture;
    two runs of one model (here a copy of the run) are two families, named by their run folders."""
    from benchmarks import detector_frontier
    from facekit.records.synthetic import write_synthetic_scenes
    from tests.test_blazeface import wheel_installed

    write_synthetic_scenes(str(tmp_path / "photos"), 3, seed=5)
    out = tmp_path / "frontier"
    shutil.copytree(tiny_nano_run, tmp_path / "nano_again")
    args = ["--dbface", tiny_nano_run, str(tmp_path / "nano_again"), "--sizes", "64",
            "--afw-gt", str(tmp_path / "photos" / "label.txt"),
            "--afw-images", str(tmp_path / "photos" / "images"), "--crowd", synthetic_scene_records[1],
            "--out", str(out), "--repeats", "2", "--rounds", "1", "--no-mtcnn"] + (
                [] if wheel_installed() else ["--no-blazeface"])
    assert detector_frontier.main(args) == 0
    results = json.load(open(out / "results.json"))
    expected = {f"{run} {fmt} 64" for run in ("nano", "nano_again") for fmt in ("fp32", "int8")}
    expected |= {"blazeface-short", "blazeface-full"} if wheel_installed() else set()
    assert set(results) == expected
    photos = detector_frontier.read_photos(str(tmp_path / "photos" / "label.txt"), str(tmp_path / "photos" / "images"))
    for row in results.values():
        assert 0 <= row["afw_ap"] <= 1 and 0 <= row["crowd_ap"] <= 1 and row["bytes"] > 10_000
        by_size = np.array(row["afw_recall_by_size"])  # [found, faces] per size bin: every face counted once
        assert by_size[:, 1].sum() == sum((~p["invalid"]).sum() for p in photos)
        assert (by_size[:, 0] <= by_size[:, 1]).all()
        assert row["ms_1"] > 0 and row["ms_2"] > 0
    table = capsys.readouterr().out
    assert all(f"| {name} |" in table for name in expected) and "AFW recall" in table
    assert os.path.getsize(out / "frontier.png") > 10_000
    assert detector_frontier.main(args) == 0  # a rerun reuses every measured point
    assert json.load(open(out / "results.json")) == results
    assert detector_frontier.main(args + ["--retime"]) == 0  # latency measured again, accuracy kept
    retimed = json.load(open(out / "results.json"))
    for name, row in retimed.items():
        assert {k: v for k, v in row.items() if not k.startswith("ms_")} == \
            {k: v for k, v in results[name].items() if not k.startswith("ms_")}
        assert row["ms_1"] > 0 and row["ms_2"] > 0
    assert any(row["ms_1"] != results[name]["ms_1"] for name, row in retimed.items())


def test_a_familys_frontier_keeps_the_points_no_faster_point_beats():
    from benchmarks.detector_frontier import frontier

    points = [(1.0, 0.5), (2.0, 0.4), (3.0, 0.7), (0.5, 0.2), (4.0, 0.7)]
    assert frontier(points) == [(0.5, 0.2), (1.0, 0.5), (3.0, 0.7)]


def test_int8_points_are_refined_by_the_refiners_int8_export_when_it_is_there(tmp_path):
    from benchmarks.detector_frontier import int8_sibling

    fp32 = tmp_path / "senet_small_fp32.tflite"
    fp32.write_bytes(b"x")
    assert int8_sibling(str(fp32)) is None
    (tmp_path / "senet_small_int8.tflite").write_bytes(b"x")
    assert int8_sibling(str(fp32)) == str(tmp_path / "senet_small_int8.tflite")
    assert int8_sibling(str(tmp_path / "senet_small_int8.tflite")) is None  # not its own sibling


def test_the_smallest_letterbox_within_the_tolerance_is_picked():
    from facekit.detection.dbface.training import pick_letterbox

    assert pick_letterbox({"192": 0.70, "256": 0.803, "320": 0.806, "640": 0.74}) == 256
    assert pick_letterbox({"192": 0.70, "256": 0.79, "320": 0.806, "640": 0.74}) == 320


@requires_shared
def test_real_multi_face_photos_convert_with_five_points(tmp_path):
    folder = SHARED_DATA / "detection_train" / "cmu_mit"
    manifest = convert_dataset(str(folder / "images"), str(tmp_path / "rec"), DetectionSettings(
        "retinaface", annotations=str(folder / "label.txt")), progress=False)
    assert manifest["num_records"] == 117 and manifest["num_faces"] == 511 and manifest["num_faces_dropped"] == 0
    scenes = evaluation_scenes([str(tmp_path / "rec")], 5)
    for scene in scenes:
        marks = scene["landmarks_px"]
        assert np.isfinite(marks).all()
        assert (marks[:, 0, 0] < marks[:, 1, 0]).all()  # image-left eye first


def test_float32_box_tolerance_scales_with_canvases_over_640():
    from facekit.detection.dbface.export import parity_failures

    def report(size, diff):
        return {"input_size": size, "keras": {"ap": 0.5},
                "artifacts": {"tflite_fp32": {"max_box_diff_px": 0.0, "max_box_head_diff_px": diff, "ap": 0.5}}}

    assert parity_failures(report(640, 9e-4)) == [] and parity_failures(report(1024, 1.5e-3)) == []
    assert parity_failures(report(640, 1.2e-3)) and parity_failures(report(320, 1.2e-3))
    assert parity_failures(report(1024, 1.7e-3)) == ["tflite_fp32: boxes differ by up to 1.70e-03 px > 1.60e-03"]
