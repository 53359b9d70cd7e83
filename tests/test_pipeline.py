"""The detect -> align pipeline: crop boxes from detections, and video tracking with re-detection."""
import numpy as np
import pytest

from facekit.geometry import landmark_box_xyxy, square_crop_box
from facekit.infer.detections import Detections
from facekit.infer.pipeline import FacePipeline, FivePointRefiner, alignment_boxes
from facekit.infer.runtime import LandmarkPredictor
from facekit.landmarks import FIVE, IBUG68, extent_from_face_box, face_box_xyxy, five_from_ibug68

TEMPLATE = np.array([[-15, -10], [15, -10], [0, 5], [-12, 20], [12, 20]], float)  # five points about a centre


def test_extent_from_face_box_inverts_the_dense_face_box_rule():
    points = np.random.default_rng(0).uniform(50, 150, (68, 2))
    np.testing.assert_allclose(extent_from_face_box(face_box_xyxy(points, IBUG68)), landmark_box_xyxy(points))


def test_alignment_boxes_follow_the_five_points_and_fall_back_to_the_box():
    five = np.stack([TEMPLATE + 100, np.full((5, 2), np.nan)])
    boxes = np.array([[0, 0, 10, 10], [20, 20, 80, 140]], float)
    extents = alignment_boxes(Detections(boxes, np.ones(2), five))
    np.testing.assert_allclose(extents[0], extent_from_face_box(face_box_xyxy(five[0], FIVE)))
    np.testing.assert_allclose(extents[1], [20, 40, 80, 140])  # 120 px face box: the top 20 px are forehead


class World:
    """Faces moving on blank frames; a fake detector and a fake landmark model that read the truth."""

    def __init__(self, centres):
        self.centres = centres  # (frames, faces, 2)
        self.frame = 0
        self.scheme = FIVE

    def truth(self):
        return TEMPLATE[None] + self.centres[self.frame][:, None]

    def detect(self, image, *, color):
        points = self.truth()
        boxes = np.stack([face_box_xyxy(p, FIVE) for p in points])
        return Detections(boxes, np.full(len(points), 0.9), points)

    def predict_extents(self, image, boxes, color):
        """The true points of the face whose centre lies in the crop; garbage (the template at the crop's
        centre) when the crop has lost it."""
        out = []
        for box in boxes:
            side = max(box[2] - box[0], box[3] - box[1]) * 1.5
            centre = (box[:2] + box[2:]) / 2
            hit = [c for c in self.centres[self.frame] if np.all(np.abs(c - centre) < side / 2)]
            out.append(TEMPLATE + (hit[0] if hit else centre + side))
        return np.stack(out)


def run(world, pipeline, frames):
    results = []
    for world.frame in range(frames):
        results.append(pipeline.track(np.zeros((480, 640, 3), np.uint8), world.frame / 30, color="rgb"))
    return results


def test_tracking_runs_the_detector_every_n_frames_and_follows_the_face():
    centres = np.stack([[[100 + 3 * f, 200 + f]] for f in range(30)]).astype(float)
    world = World(centres)
    pipeline = FacePipeline(world, world, redetect_every=10)
    results = run(world, pipeline, 30)
    assert pipeline.detector_runs == 3 and [r.detected for r in results].count(True) == 3
    assert results[0].detected and results[10].detected and results[20].detected
    np.testing.assert_allclose(pipeline.tracks[0].points, world.truth()[0])  # raw points: exact
    assert np.abs(results[-1].landmarks_px[0] - world.truth()[0]).max() < 3  # smoothed: close behind
    assert results[-1].five_px.shape == (1, 5, 2) and results[-1].boxes_xyxy.shape == (1, 4)


def test_a_lost_face_triggers_detection_and_two_faces_keep_their_order():
    centres = np.stack([[[100 + f, 200], [400, 300 - f]] for f in range(12)]).astype(float)
    centres[6:, 0] += 250  # the first face jumps away at frame 6
    world = World(centres)
    pipeline = FacePipeline(world, world, redetect_every=100)
    results = run(world, pipeline, 12)
    assert [r.detected for r in results] == [True] + [False] * 5 + [True] + [False] * 5
    assert all(len(r) == 2 for r in results)
    np.testing.assert_allclose(pipeline.tracks[1].points, world.truth()[1])
    np.testing.assert_allclose(pipeline.tracks[0].points, world.truth()[0])


def test_without_a_landmark_model_every_frame_is_detected_and_bad_settings_are_refused():
    world = World(np.stack([[[100.0 + f, 100.0]] for f in range(4)]))
    pipeline = FacePipeline(world)
    assert all(r.detected and r.landmarks_px is None for r in run(world, pipeline, 4))
    assert pipeline.detector_runs == 4
    with pytest.raises(ValueError, match="redetect_every"):
        FacePipeline(world, world, redetect_every=0)


def test_predict_tracks_a_video_through_the_pipeline_and_writes_json(tmp_path):
    import json

    import cv2

    from freeze import predict

    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(7):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    world = World(np.stack([[[100.0 + 2 * f, 120.0]] for f in range(7)]))

    class Clock(FacePipeline):  # the fake models read the frame number from the pipeline's calls
        def track(self, frame, t, *, color):
            world.frame = round(t * 10)
            return super().track(frame, t, color=color)
    written = predict.track_video(Clock(world, world, redetect_every=3), str(tmp_path / "clip.avi"),
                                  str(tmp_path), as_json=True)
    assert cv2.VideoCapture(written).get(cv2.CAP_PROP_FRAME_COUNT) == 7
    frames = json.load(open(tmp_path / "clip.json"))["frames"]
    assert [f["detected"] for f in frames] == [True, False, False, True, False, False, True]
    assert len(frames[-1]["faces"]) == 1 and len(frames[-1]["faces"][0]["points"]) == 5
    assert abs(frames[0]["faces"][0]["points"][2][0] - 100.0) < 1e-6  # nose tip at the face centre


def test_tracked_crops_do_not_feed_the_models_jaw_errors_back():
    """A model that draws the jaw 20% of its crop too wide: cropping on the extent of its last points would widen
    every crop (to 1.7x its width within 10 frames); tracking crops come from the inner points, so they hold still and
    equal the crop of a detection of the same face."""
    from facekit.infer.pipeline import tracking_boxes
    from facekit.pose import REFERENCE_FACE_68

    truth = REFERENCE_FACE_68[:, :2] + [320, 240]

    class WideJaw:
        scheme = IBUG68

        def predict_extents(self, image, boxes, color):
            out = np.repeat(truth[None], len(boxes), axis=0)
            for points, box in zip(out, boxes):
                centre_x = (box[0] + box[2]) / 2
                points[:17, 0] += np.sign(points[:17, 0] - centre_x) * 0.2 * (box[2] - box[0])
            return out

        def detect(self, image, *, color):
            five = five_from_ibug68(truth)
            return Detections(face_box_xyxy(five, FIVE)[None], np.ones(1), five[None])

    model = WideJaw()
    pipeline = FacePipeline(model, model, redetect_every=100)
    for frame in range(10):
        pipeline.track(np.zeros((480, 640, 3), np.uint8), frame / 30, color="rgb")
    crop = tracking_boxes(pipeline.tracks[0].points[None], IBUG68)[0]
    first = alignment_boxes(model.detect(None, color="rgb"))[0]
    np.testing.assert_allclose(crop, first, atol=1e-6)
    assert landmark_box_xyxy(pipeline.tracks[0].points)[2] - landmark_box_xyxy(truth)[2] > 10  # the jaw is wide


class CornerModel(LandmarkPredictor):
    """A LandmarkPredictor whose network answers its crop's corners (top-left, bottom-right, then the centre), so
    the points show where the crop was taken; no TFLite file."""

    def __init__(self, scheme, margin=0.2):
        self.scheme, self.size, self.info = scheme, 16, {"margin": margin}
        self.crop_scale = scheme.face_scale * (1 + 2 * margin)
        corners = np.array([[0, 0], [16, 16]] + [[8, 8]] * (scheme.num_points - 2), float)
        self.model = lambda batch: np.repeat(corners[None], len(batch), axis=0)


def test_the_refiner_crops_a_detected_box_as_the_converter_crops_its_face():
    dense = np.random.default_rng(1).uniform(100, 220, (68, 2))
    box = face_box_xyxy(dense, IBUG68)  # the detector's box of this face (AFW's rule)
    detector = World(np.zeros((1, 1, 2)))
    detector.detect = lambda image, color: Detections(box[None], np.array([0.8]), np.full((1, 5, 2), 7.0))
    refined = FivePointRefiner(detector, CornerModel(FIVE)).detect(np.zeros((300, 300, 3), np.uint8), color="rgb")
    converter_crop = square_crop_box(landmark_box_xyxy(dense), IBUG68.face_scale * 1.4)  # --points five's crop
    np.testing.assert_allclose(refined.landmarks_px[0, :2].reshape(-1), converter_crop, atol=1e-4)
    np.testing.assert_array_equal(refined.boxes_xyxy, box[None])
    assert refined.scores.tolist() == [np.float32(0.8)] and refined.landmarks_px.shape == (1, 5, 2)
    for scheme in (IBUG68, FIVE):  # every scheme's model crops an extent alike
        extent = landmark_box_xyxy(dense)
        np.testing.assert_allclose(CornerModel(scheme).predict_extents(np.zeros((300, 300, 3), np.uint8), extent,
                                                                        color="rgb")[0, :2].reshape(-1),
                                   converter_crop, atol=1e-4)
    dense_model = FivePointRefiner(detector, CornerModel(IBUG68)).detect(np.zeros((300, 300, 3), np.uint8), color="rgb")
    assert dense_model.landmarks_px.shape == (1, 5, 2)  # a 68-point refiner's five points are derived
    centre = (converter_crop[:2] + converter_crop[2:]) / 2
    np.testing.assert_allclose(dense_model.landmarks_px[0, 2], centre, atol=1e-4)  # point 30, the crop's centre
    detector.detect = lambda image, color: Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
    assert len(FivePointRefiner(detector, CornerModel(FIVE)).detect(np.zeros((9, 9, 3), np.uint8), color="rgb")) == 0


def test_a_second_refiner_pass_crops_from_the_first_passs_points():
    """passes=2: the second crop is the converter's crop of the first pass's points (their landmark box), here the
    first crop's corners, so the answer is that crop cropped again."""
    box = np.array([100.0, 90.0, 180.0, 200.0])
    detector = World(np.zeros((1, 1, 2)))
    detector.detect = lambda image, color: Detections(box[None], np.array([0.8]), np.full((1, 5, 2), 7.0))
    model, image = CornerModel(FIVE), np.zeros((300, 300, 3), np.uint8)
    first = FivePointRefiner(detector, model).detect(image, color="rgb").landmarks_px[0, :2].reshape(-1)
    second = FivePointRefiner(detector, model, passes=2).detect(image, color="rgb").landmarks_px[0, :2].reshape(-1)
    np.testing.assert_allclose(second, square_crop_box(first, model.crop_scale), atol=1e-4)
    assert not np.allclose(first, second, atol=1)
    with pytest.raises(ValueError, match="passes"):
        FivePointRefiner(detector, model, passes=0)


def test_the_benchmark_clips_carry_their_true_points_with_the_faces():
    """benchmarks/pipeline_speed.py: each drawn face's true points land on the marks painted at its annotated
    points, through rotation, zoom and the pasted second face."""
    from benchmarks.pipeline_speed import face_motion, make_clip

    rng, colours = np.random.default_rng(1), ((0, 0, 255), (255, 0, 0))
    faces = []
    for colour in colours:
        photo = np.full((400, 400, 3), 128, np.uint8)
        points = np.concatenate([rng.uniform(120, 280, (66, 2)), [[200, 120], [200, 280]]])  # 160 px tall
        for x, y in points:
            photo[int(round(y)) - 3:int(round(y)) + 4, int(round(x)) - 3:int(round(x)) + 4] = colour
        faces.append(("marked", photo, points))
    for clip in ("drift", "motion"):
        frames, truths = make_clip(clip, 40, faces)
        assert len(truths[0]) == len(face_motion(clip, 0))
        for k in (0, 13, 39):
            for colour, truth in zip(colours, truths[k]):
                inside = (truth >= 0).all(axis=1) & (truth < [640, 480]).all(axis=1)
                pixels = frames[k][np.round(truth[inside, 1]).astype(int), np.round(truth[inside, 0]).astype(int)]
                assert inside.sum() > 60 and np.mean(np.abs(pixels.astype(int) - colour).max(axis=1) < 60) > 0.9


def test_the_benchmark_agreement_counts_gaps_and_truth_by_hand():
    from benchmarks.pipeline_speed import agreement

    truth = np.zeros((68, 2))
    frames_truth = [[truth], [truth], [truth]]
    base = [[truth + 1], [truth], [None]]           # detect every frame: off by (1, 1), exact, missed
    mine = [[truth + [1, 4]], [None], [truth + 3]]  # gap 3 px; missed; found where the base missed
    a = agreement(mine, base, frames_truth)
    assert a["gap_frames"] == 1 and a["gap_median"] == pytest.approx(3.0) and a["within_2px"] == 0
    assert a["found"] == 2 and a["face_frames"] == 3
    assert a["truth_px"] == pytest.approx((np.hypot(1, 4) + np.hypot(3, 3)) / 2)


def test_pipeline_accuracy_recovers_a_mosaic_faces_68_points_from_its_five():
    """benchmarks/pipeline_accuracy.py: the scale and shift that map a face's five points onto a mosaic label's
    give back its 68 points there; a label no face fits is a clear error."""
    from benchmarks.pipeline_accuracy import mosaic_truths, scale_shift
    from facekit.landmarks import five_from_ibug68

    s, t, residual = scale_shift(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0], [2.0, 1.0],
                                                                                        [1.0, 2.0]]))
    assert (s, residual) == (0.5, 0.0) and t.tolist() == [1.0, 1.0]
    rng = np.random.default_rng(3)
    faces = {f"face_{k}.jpg": rng.uniform(0, 300, (68, 2)) for k in range(3)}
    placed = 0.4 * faces["face_1.jpg"] + [50.0, 20.0]
    five = five_from_ibug68(placed)
    photo = {"boxes_xyxy": np.array([[0.0, 0, 10, 10], [1.0, 1, 9, 9]]),
             "landmarks_px": np.stack([np.full((5, 2), -1.0), five])}  # a face without points is left out
    (truths,) = mosaic_truths([photo], faces)
    assert len(truths) == 1
    np.testing.assert_allclose(truths[0][1], placed, atol=1e-9)
    photo["landmarks_px"][1, 0] += 30.0  # no face maps onto a moved eye
    with pytest.raises(ValueError, match="matches none"):
        mosaic_truths([photo], faces)
