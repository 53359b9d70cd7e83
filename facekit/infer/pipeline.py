"""One detect -> align pipeline (NumPy + LiteRT, no TensorFlow): any detector that returns Detections (the MTCNN
cascade, the DBFace FaceDetector) feeding any exported landmark model (facekit.infer.runtime.LandmarkPredictor).

Images: the detector finds the faces; the landmark model's crop is centred on the landmark extent each face's
five points imply (facekit.landmarks: five points -> face box -> extent), so detectors with different box
conventions give the model the crops it was trained on; a face without five points uses its box.

Video (`track`): the detector runs on the first frame, every `redetect_every` frames, and whenever tracking is
lost; in between, each face's crop comes from its own landmarks on the previous frame. Tracking is lost when a
face's new landmark extent overlaps the one it was cropped from by less than `min_overlap` (the face moved
faster than the crop can follow, or left). A One-Euro filter per face smooths the points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facekit.boxes import box_iou
from facekit.geometry import landmark_box_xyxy
from facekit.infer.detections import Detections
from facekit.infer.runtime import OneEuroFilter
from facekit.landmarks import FIVE, extent_from_face_box, face_box_xyxy, five_points


@dataclass
class Faces:
    """Faces of one image or frame: boxes_xyxy (F, 4), scores (F,), five_px (F, 5, 2) (NaN when unknown),
    landmarks_px (F, K, 2) from the landmark model (None without one); detected: whether the detector ran."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    five_px: np.ndarray
    landmarks_px: np.ndarray | None
    detected: bool

    def __len__(self) -> int:
        return len(self.scores)


def five_point_extent(five_px: np.ndarray) -> np.ndarray:
    """(5, 2) five points -> (4,) the landmark extent to crop on (the five-point face box rule, then its extent):
    the one rule for detected and tracked faces."""
    return extent_from_face_box(face_box_xyxy(five_px, FIVE))


def alignment_boxes(found: Detections) -> np.ndarray:
    """Detections -> (F, 4) landmark extents to crop on: from each face's five points when all are finite (the
    five-point face box rule, then its extent), else from the detector's box."""
    boxes = np.asarray(found.boxes_xyxy, np.float64).reshape(-1, 4)
    extents = np.stack([extent_from_face_box(b) for b in boxes]) if len(boxes) else np.zeros((0, 4))
    for k, points in enumerate(np.asarray(found.landmarks_px, np.float64).reshape(-1, 5, 2)):
        if np.isfinite(points).all():
            extents[k] = five_point_extent(points)
    return extents


def tracking_boxes(points: np.ndarray, scheme) -> np.ndarray:
    """(F, K, 2) landmarks of the last frame -> (F, 4) extents to crop on in the next: the five points they imply,
    through the same rule as a detection's (alignment_boxes). The raw extent of all K points would feed the
    model's errors back into its next crop (a contour predicted too wide widens the crop, which widens the
    contour); the eyes, nose and mouth are the stablest points, and the shared rule gives a tracked face the crop
    a detection of it would."""
    return np.stack([five_point_extent(five_points(p, scheme)) for p in points])


class FivePointRefiner:
    """A detector whose five points come from a landmark model (a LandmarkPredictor: five points, or a dense scheme
    whose five points are derived) run on a crop of each detected box: detect(image, color=...) -> Detections,
    boxes and scores unchanged. The crop comes from the box (its landmark extent), not from the detector's own
    five points, so coarse points do not move it. With passes > 1 each further pass crops again from the points the
    last one found (their landmark box, as the converter framed the training crops), which takes out the detector
    box's framing jitter; each pass costs one more refiner call per face."""

    def __init__(self, detector, refiner, passes: int = 1):
        if passes < 1:
            raise ValueError(f"passes must be at least 1, got {passes}")
        self.detector, self.refiner, self.passes = detector, refiner, passes

    def detect(self, image: np.ndarray, *, color: str) -> Detections:
        found = self.detector.detect(image, color=color)
        boxes = np.asarray(found.boxes_xyxy, np.float64).reshape(-1, 4)
        if not len(boxes):
            return found
        points = self.refiner.predict_extents(image, np.stack([extent_from_face_box(b) for b in boxes]), color=color)
        for _ in range(self.passes - 1):
            points = self.refiner.predict(image, np.stack([landmark_box_xyxy(p) for p in points]), color=color)
        five = np.stack([five_points(p, self.refiner.scheme) for p in points])
        return Detections(found.boxes_xyxy, found.scores, five.astype(np.float32))


class _Track:
    def __init__(self, score: float, smoother: OneEuroFilter):
        self.score, self.smoother, self.points = score, smoother, None


class FacePipeline:
    """pipeline(image, color=...) -> Faces for a photo; pipeline.track(frame, t, color=...) -> Faces per video
    frame (call reset() between videos)."""

    def __init__(self, detector, landmarks=None, redetect_every: int = 10, min_overlap: float = 0.5,
                 min_cutoff: float = 1.0, beta: float = 0.05):
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, got {redetect_every}")
        self.detector, self.landmarks = detector, landmarks
        self.redetect_every, self.min_overlap = redetect_every, min_overlap
        self.filter_args = (min_cutoff, beta)
        self.reset()

    def reset(self) -> None:
        self.tracks: list[_Track] = []
        self.since_detection = 0
        self.detector_runs = 0

    def __call__(self, image: np.ndarray, *, color: str) -> Faces:
        found = self._detect(image, color)
        if self.landmarks is None:
            return Faces(found.boxes_xyxy, found.scores, found.landmarks_px, None, True)
        _, points = self._align(image, found, color)
        return Faces(found.boxes_xyxy, found.scores, found.landmarks_px, points, True)

    def _align(self, image, found: Detections, color: str) -> tuple[np.ndarray, np.ndarray]:
        """(extents (F, 4), landmarks (F, K, 2)) of detected faces, cropped on their five points' extent."""
        extents = alignment_boxes(found)
        return extents, self.landmarks.predict_extents(image, extents, color=color)

    def _detect(self, image, color) -> Detections:
        self.detector_runs += 1
        return self.detector.detect(image, color=color)

    def _faces(self, points: np.ndarray, detected: bool) -> Faces:
        scheme = self.landmarks.scheme
        boxes = np.stack([face_box_xyxy(p, scheme) for p in points]) if len(points) else np.zeros((0, 4))
        five = np.stack([five_points(p, scheme) for p in points]) if len(points) else np.zeros((0, 5, 2))
        return Faces(boxes, np.array([t.score for t in self.tracks], np.float32), five, points, detected)

    def track(self, frame: np.ndarray, t: float, *, color: str) -> Faces:
        """One video frame at time t (seconds)."""
        if self.landmarks is None:  # nothing to track with: detect every frame
            found = self._detect(frame, color)
            return Faces(found.boxes_xyxy, found.scores, found.landmarks_px, None, True)
        detected = not self.tracks or self.since_detection + 1 >= self.redetect_every
        if not detected:
            extents = tracking_boxes(np.stack([track.points for track in self.tracks]), self.landmarks.scheme)
            points = self.landmarks.predict_extents(frame, extents, color=color)
            moved = tracking_boxes(points, self.landmarks.scheme)
            overlap = np.array([box_iou(a[None], b[None])[0, 0] for a, b in zip(extents, moved)])
            detected = bool((overlap < self.min_overlap).any())
        if detected:
            found = self._detect(frame, color)
            extents, points = self._align(frame, found, color)
            self._match_tracks(extents, found.scores)
            self.since_detection = 0
        else:
            self.since_detection += 1
        smoothed = []
        for track, p in zip(self.tracks, points):
            track.points = p
            smoothed.append(track.smoother(p, t))
        return self._faces(np.asarray(smoothed).reshape(len(points), -1, 2), detected)

    def _match_tracks(self, extents: np.ndarray, scores: np.ndarray) -> None:
        """New detections take over the filter of the track they overlap most (IoU > 0.3), so smoothing carries
        across re-detection; the others start fresh; unmatched tracks end."""
        old = self.tracks
        old_boxes = tracking_boxes(np.stack([t.points for t in old]), self.landmarks.scheme) if old else \
            np.zeros((0, 4))
        overlap = box_iou(extents, old_boxes) if len(old) and len(extents) else np.zeros((len(extents), 0))
        taken, tracks = set(), []
        for k in np.argsort(-np.asarray(scores)):
            best = int(np.argmax(overlap[k])) if overlap.shape[1] else -1
            if best >= 0 and overlap[k, best] > 0.3 and best not in taken:
                taken.add(best)
                track = old[best]
                track.score = float(scores[k])
            else:
                track = _Track(float(scores[k]), OneEuroFilter(*self.filter_args))
            tracks.append((k, track))
        self.tracks = [track for _, track in sorted(tracks, key=lambda pair: pair[0])]
