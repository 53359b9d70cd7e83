"""The MTCNN cascade (NumPy + OpenCV, no TensorFlow): the same code runs Keras networks and .tflite files.

A network is any callable taking a float32 batch (N, H, W, 3) of normalised RGB and returning a dict of arrays:
P-Net {"box": (N, h, w, 4), "face": (N, h, w, 2)}, R-Net {"box": (N, 4), "face": (N, 2)}, O-Net adds
"landmarks": (N, 10) as x1..x5, y1..y5 fractions of the window.

Steps: image pyramid (scale 12 / min_face, then x factor), P-Net on every scale (one call per scale for all images
of the same size), NMS 0.5 per scale and 0.7 across scales, squaring; R-Net and O-Net on bilinear crops of the
squared boxes (mid-grey outside the image) in chunks of `chunk` crops, so memory stays bounded however crowded the
photo; NMS 0.7, the last one over the smaller area.

Box arithmetic is the one the published weights come with (the original MTCNN's pixel-index boxes, as in the
`mtcnn` package, whose outputs this cascade reproduces): a P-Net cell (i, j) is the window x from 2j + 1 to
2j + 12 of the scaled image, regressed with side 11; later boxes regress with side x2 - x1 + 1; landmarks are
x1 - 1 + side * fraction. Boxes come out as xyxy image pixels in that convention (within a pixel of continuous).
"""
from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np

from facekit.boxes import box_sides, calibrate, nms, to_square
from facekit.infer.detections import Detections, as_rgb

THRESHOLDS = (0.6, 0.7, 0.7)
NMS_THRESHOLDS = (0.5, 0.7, 0.7, 0.7)  # P-Net per scale, P-Net across scales, R-Net, O-Net (min area)
PNET_STRIDE, PNET_WINDOW = 2, 12
CROP_SIZES = {"rnet": 24, "onet": 48}


def normalize(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 (pixel - 127.5) / 128, the networks' input scaling."""
    return (image_rgb.astype(np.float32) - 127.5) * (1.0 / 128.0)


def pyramid_scales(height: int, width: int, min_face: float = 20.0, factor: float = 0.709) -> list[float]:
    """Scales 12 / min_face x factor^k while the scaled short side still holds P-Net's 12 px window (the `mtcnn`
    package's rule; counting levels from the unscaled side ran past it for min_face > 20, and LiteRT refused
    the too-small P-Net input)."""
    scales, scale = [], PNET_WINDOW / min_face
    while min(height, width) * scale >= PNET_WINDOW:
        scales.append(scale)
        scale *= factor
    return scales


def pnet_candidates(box: np.ndarray, face: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """One P-Net output map box (h, w, 4), face (h, w, 2) -> (M, 5) calibrated boxes in image pixels + score."""
    rows, cols = np.nonzero(face[..., 1] > threshold)
    windows = np.stack([cols * PNET_STRIDE + 1, rows * PNET_STRIDE + 1, cols * PNET_STRIDE + PNET_WINDOW,
                        rows * PNET_STRIDE + PNET_WINDOW], axis=1).astype(np.float64)
    boxes = (windows + box[rows, cols] * (PNET_WINDOW - 1)) / scale
    return np.concatenate([boxes, face[rows, cols, 1:2]], axis=1)


def training_targets(stage: str, crops: np.ndarray, faces: np.ndarray, points: np.ndarray):
    """The outputs that make this cascade decode a training window back into its face: the exact inverse of its
    box arithmetic, so networks trained here run in it unchanged.

    stage "pnet": crops (N, 4) are continuous squares [x, x + S) resized to 12 px; the cascade reads such a cell
    as the window from x + S/12 to x + S regressed with side 11 S/12. "rnet"/"onet": crops are boxes in the
    cascade's pixel-index convention, cut with crop_windows, regressed with side x2 - x1 + 1, points decoded as
    x1 - 1 + side * fraction. faces (N, 4) continuous xyxy, points (N, 5, 2) continuous (NaN allowed) ->
    (box offsets (N, 4), landmark fractions (N, 10) as x1..x5, y1..y5)."""
    crops, faces, points = (np.asarray(a, np.float64) for a in (crops, faces, points))
    if stage == "pnet":
        side = (crops[:, 2] - crops[:, 0])[:, None]
        windows = crops + np.concatenate([side, side, 0 * side, 0 * side], axis=1) / PNET_WINDOW
        sides, origin = np.tile(side * (PNET_WINDOW - 1) / PNET_WINDOW, (1, 4)), windows[:, :2]
    elif stage in CROP_SIZES:
        windows, sides, origin = crops, box_sides(crops, inclusive=True), crops[:, :2] - 1
    else:
        raise ValueError(f"stage must be pnet, rnet or onet, got {stage!r}")
    fractions = (points - origin[:, None]) / sides[:, None, :2]
    return (faces - windows) / sides, np.concatenate([fractions[..., 0], fractions[..., 1]], axis=1)


def crop_region(stage: str, crops: np.ndarray) -> np.ndarray:
    """The continuous image region (N, 4) a training window shows: the crop itself for pnet, the pixel-index box
    (x1, y1, x2, y2) covering pixels x1..x2, i.e. [x1, x2 + 1), for rnet and onet."""
    crops = np.asarray(crops, np.float64)
    return crops if stage == "pnet" else crops + np.array([0, 0, 1, 1])


def crop_windows(image_norm: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops (N, size, size, 3) of boxes (N, 4) from a normalised image (H, W, 3), sampled like
    tf.image.crop_and_resize with boxes divided by (W, H) (the package's sampling): size points from
    x1 (W - 1) / W to x2 (W - 1) / W. A sample outside the pixel centres' range [0, W - 1] reads 0 (mid-grey),
    as in TensorFlow, rather than a blend of the edge pixel and the border as OpenCV would give."""
    height, width = image_norm.shape[:2]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    shrink = np.array([(width - 1) / width, (height - 1) / height])
    starts, steps = boxes[:, :2] * shrink, (boxes[:, 2:] - boxes[:, :2]) * shrink / (size - 1)
    samples = starts[:, :, None] + steps[:, :, None] * np.arange(size)  # (N, 2, size): x and y of the samples
    outside = (samples < 0) | (samples > np.array([width - 1, height - 1])[:, None])
    crops = np.empty((len(boxes), size, size, 3), np.float32)
    for k, ((x0, y0), (dx, dy)) in enumerate(zip(starts, steps)):
        matrix = np.array([[dx, 0, x0], [0, dy, y0]])
        crops[k] = cv2.warpAffine(image_norm, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    for k in np.nonzero(outside.any(axis=(1, 2)))[0]:
        crops[k][:, outside[k, 0]] = 0
        crops[k][outside[k, 1]] = 0
    return crops


class MTCNN:
    """detect(image, color=...) -> Detections; detect_batch(images, color=...) -> list of Detections."""

    def __init__(self, pnet: Callable, rnet: Callable, onet: Callable, min_face: float = 20.0, factor: float = 0.709,
                 thresholds=THRESHOLDS, nms_thresholds=NMS_THRESHOLDS, chunk: int = 256, clip: bool = True):
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.min_face, self.factor, self.chunk, self.clip = min_face, factor, chunk, clip
        self.thresholds, self.nms_thresholds = tuple(thresholds), tuple(nms_thresholds)

    def detect(self, image: np.ndarray, *, color: str) -> Detections:
        return self.detect_batch([image], color=color)[0]

    def detect_batch(self, images: list[np.ndarray], *, color: str) -> list[Detections]:
        normalised = [normalize(as_rgb(image, color)) for image in images]
        candidates = self.propose(normalised)
        candidates = self.refine(normalised, candidates)
        return self.output(normalised, candidates)

    def propose(self, images_norm: list[np.ndarray]) -> list[np.ndarray]:
        """P-Net stage: per image, squared candidate boxes (M, 5) (xyxy + score)."""
        per_image: list[list[np.ndarray]] = [[] for _ in images_norm]
        groups: dict[tuple, list[int]] = {}
        for index, image in enumerate(images_norm):
            groups.setdefault(image.shape[:2], []).append(index)
        per_call = max(1, self.chunk // 16)  # whole images per P-Net call
        for (height, width), indices in groups.items():
            for scale in pyramid_scales(height, width, self.min_face, self.factor):
                size = (int(width * scale), int(height * scale))
                for start in range(0, len(indices), per_call):
                    chunk = indices[start:start + per_call]
                    batch = np.stack([cv2.resize(images_norm[i], size, interpolation=cv2.INTER_AREA) for i in chunk])
                    out = self.pnet(batch)
                    for k, index in enumerate(chunk):
                        found = pnet_candidates(out["box"][k], out["face"][k], scale, self.thresholds[0])
                        per_image[index].append(found[nms(found[:, :4], found[:, 4], self.nms_thresholds[0],
                                                             greedy=False)])
        results = []
        for found in per_image:
            found = np.concatenate(found) if found else np.zeros((0, 5))
            found = found[nms(found[:, :4], found[:, 4], self.nms_thresholds[1], greedy=False)]
            results.append(np.concatenate([to_square(found[:, :4]), found[:, 4:]], axis=1))
        return results

    def _run(self, stage: str, images_norm: list[np.ndarray], candidates: list[np.ndarray]) -> dict:
        """Crop every candidate of every image and run the stage's network in chunks: dict of (M, ...) arrays."""
        network, size = (self.rnet, CROP_SIZES["rnet"]) if stage == "rnet" else (self.onet, CROP_SIZES["onet"])
        pieces = [(image, boxes[start:start + self.chunk, :4]) for image, boxes in zip(images_norm, candidates)
                  for start in range(0, len(boxes), self.chunk)]
        outputs = [network(crop_windows(image, boxes, size)) for image, boxes in pieces if len(boxes)]
        if not outputs:
            return {"box": np.zeros((0, 4)), "face": np.zeros((0, 2)), "landmarks": np.zeros((0, 10))}
        return {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0]}

    def _stage_outputs(self, stage: str, images_norm, candidates):
        """Per image: (candidate boxes (M, 4), face probability (M,), box offsets (M, 4), landmarks (M, 10))."""
        out, start = self._run(stage, images_norm, candidates), 0
        for boxes in candidates:
            end = start + len(boxes)
            marks = out["landmarks"][start:end] if "landmarks" in out else None
            yield boxes[:, :4], out["face"][start:end, 1], out["box"][start:end], marks
            start = end

    def refine(self, images_norm, candidates) -> list[np.ndarray]:
        """R-Net stage: rescore, keep > threshold, calibrate, NMS, square: per image (M', 5)."""
        results = []
        for boxes, face, offsets, _ in self._stage_outputs("rnet", images_norm, candidates):
            keep = face > self.thresholds[1]
            refined, face = calibrate(boxes[keep], offsets[keep], inclusive=True), face[keep]
            kept = nms(refined, face, self.nms_thresholds[2], greedy=False)
            results.append(np.concatenate([to_square(refined[kept]), face[kept, None]], axis=1))
        return results

    def output(self, images_norm, candidates) -> list[Detections]:
        """O-Net stage: rescore, keep > threshold, landmarks in the input window, calibrate, NMS over the min area."""
        results = []
        for image, (boxes, face, offsets, marks) in zip(images_norm, self._stage_outputs("onet", images_norm,
                                                                                          candidates)):
            keep = face > self.thresholds[2]
            boxes, face, offsets, marks = boxes[keep], face[keep], offsets[keep], marks[keep]
            sides = box_sides(boxes, inclusive=True)[:, None, :2]
            landmarks = np.stack([marks[:, :5], marks[:, 5:]], axis=-1) * sides + boxes[:, None, :2] - 1
            refined = calibrate(boxes, offsets, inclusive=True)
            kept = nms(refined, face, self.nms_thresholds[3], mode="min", greedy=False)
            refined, landmarks = refined[kept], landmarks[kept]
            if self.clip:
                height, width = image.shape[:2]
                refined = np.clip(refined, 0, [width, height, width, height])
            results.append(Detections(refined.astype(np.float32), face[kept].astype(np.float32),
                                      landmarks.astype(np.float32)))
        return results


class TFLiteNetwork:
    """A stage's .tflite file as a cascade callable, run with LiteRT. One interpreter per input shape is kept, so
    P-Net's pyramid scales and the crop batches never re-plan; crop batches are padded to a power of two (at most
    `max_batch`) so a handful of shapes cover every photo."""

    def __init__(self, path: str, num_threads: int | None = None, max_batch: int = 256):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such model file")
        self.path, self.num_threads, self.max_batch, self._runners = path, num_threads, max_batch, {}
        self._interpreter = Interpreter
        probe = Interpreter(model_path=path)
        self.fixed_size = probe.get_input_details()[0]["shape_signature"][1] != -1

    def _runner(self, shape: tuple):
        if shape not in self._runners:
            if len(self._runners) >= 64:  # photos of many sizes: forget the oldest shape
                self._runners.pop(next(iter(self._runners)))
            interpreter = self._interpreter(model_path=self.path, num_threads=self.num_threads)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, list(shape), strict=False)
            interpreter.allocate_tensors()
            self._runners[shape] = interpreter.get_signature_runner()
        return self._runners[shape]

    def __call__(self, batch: np.ndarray) -> dict:
        batch = np.ascontiguousarray(batch, np.float32)
        count = len(batch)
        if self.fixed_size:
            padded = min(1 << max(count - 1, 0).bit_length(), max(self.max_batch, count))
            batch = np.concatenate([batch, np.zeros((padded - count, *batch.shape[1:]), np.float32)])
        outputs = self._runner(batch.shape)(image=batch)
        return {key: value[:count] for key, value in outputs.items()}


def tflite_cascade(model_dir: str, num_threads: int | None = None, **options) -> MTCNN:
    """MTCNN from mtcnn_pnet.tflite, mtcnn_rnet.tflite and mtcnn_onet.tflite in model_dir (freeze/export.py)."""
    paths = [os.path.join(model_dir, f"mtcnn_{stage}.tflite") for stage in ("pnet", "rnet", "onet")]
    return MTCNN(*(TFLiteNetwork(path, num_threads, options.get("chunk", 256)) for path in paths), **options)
