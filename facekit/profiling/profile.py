"""Profile one 68-point face: fit it, then render views from its own yaw outward in steps, with landmarks in both
300W-LP conventions, and write them in the 300W-LP layout.

pts_3d: every annotated point carried through the fitted surface (the convention of AFLW2000-3D's labels).
pts_2d: the same, except the jaw points on the side turned away, which move to the visible outline (the contour
line vertex with the most extreme rotated x), as 300W-LP's `pt2d`. Poses are (pitch, yaw, roll) in radians with
300W-LP's signs (facekit.pose).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.io

from facekit.pose import euler_from_matrix, rotation_matrix
from facekit.profiling.fit import FaceModel, Fit, Pose, fit_points, outline_vertices
from facekit.profiling.render import build_scene, carried_points, render, view_positions

FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # the model frame (y up, z to the camera) <-> OpenCV axes (facekit.pose)


@dataclass(frozen=True)
class View:
    image: np.ndarray           # (H, W, 3) as the source
    pts_2d: np.ndarray          # (68, 2) px, visible-outline jaw
    pts_3d: np.ndarray          # (68, 2) px, surface jaw
    pose_rad: np.ndarray        # (3,) pitch, yaw, roll


def pose_angles(pose: Pose) -> np.ndarray:
    """(pitch, yaw, roll) radians, 300W-LP's signs, of a fitted pose."""
    return euler_from_matrix(FLIP_YZ @ pose.rotation @ FLIP_YZ)


def posed_at_yaw(pose: Pose, yaw_rad: float) -> Pose:
    """The pose with its Euler yaw set to yaw_rad and its pitch and roll kept (300W-LP turns faces this way: a turn
    about the camera's vertical axis lands short of the asked yaw when the face is pitched, 79 for 90 degrees)."""
    pitch, _, roll = pose_angles(pose)
    return Pose(pose.scale, FLIP_YZ @ rotation_matrix(pitch, yaw_rad, roll) @ FLIP_YZ, pose.translation)


def outline_jaw(model: FaceModel, fit: Fit, pose: Pose) -> dict[int, np.ndarray]:
    """{jaw index: pixel} of the away-side jaw points' outline vertices (fit.outline_vertices) under `pose`."""
    chosen = outline_vertices(model, pose, fit.coef)
    grid = np.array(list(chosen.values()), int)
    projected = pose.project(model.mean[grid] + model.basis[grid] @ fit.coef)
    return dict(zip(chosen, projected))


def yaw_steps(yaw_deg: float, step_deg: float, max_deg: float) -> list[float]:
    """Turns (degrees, signed outward) from a face's own |yaw| up to max_deg in steps: 0 first (the face itself)."""
    turns, target = [0.0], (np.floor(abs(yaw_deg) / step_deg) + 1) * step_deg
    while target <= max_deg + 1e-9:
        turns.append(target - abs(yaw_deg))
        target += step_deg
    return turns


def profile_face(image: np.ndarray, points_px: np.ndarray, model: FaceModel, step_deg: float = 5.0,
                 max_deg: float = 90.0, max_error: float = 0.08) -> list[View]:
    """Views of one face from its own yaw outward. ValueError when the fit's mean error exceeds max_error of the
    outer-eye-corner distance (a face the model cannot explain would give wrong labels)."""
    fit = fit_points(points_px, model)
    relative = fit.error.mean() / np.linalg.norm(points_px[36] - points_px[45])
    if relative > max_error:
        raise ValueError(f"fit error {100 * relative:.1f}% of the eye distance exceeds {100 * max_error:.0f}%")
    scene = build_scene(model, fit, image.shape[:2])
    sign = -fit.pose.yaw_sign()  # outward: the way the nose already points (yaw_sign is +1 to the image right)
    own = pose_angles(fit.pose)
    views = []
    for turn in yaw_steps(np.degrees(own[1]), step_deg, max_deg):
        pose = posed_at_yaw(fit.pose, own[1] + sign * np.radians(turn))  # positive yaw: nose to the image left
        new_px, new_depth = view_positions(scene, fit.pose, pose.rotation @ fit.pose.rotation.T)
        pts_3d = carried_points(points_px, scene, new_px)
        pts_2d = pts_3d.copy()
        if turn:
            for j, point in outline_jaw(model, fit, pose).items():
                pts_2d[j] = point
        views.append(View(render(image, scene, new_px, new_depth) if turn else image.copy(), pts_2d, pts_3d,
                          np.array([own[0], own[1] + sign * np.radians(turn), own[2]])))
    return views


def write_300wlp_view(root: str, subset: str, name: str, view: View) -> None:
    """root/SUBSET/NAME.jpg + NAME.mat (pt2d (2, 68), Pose_Para (1, 7)) and root/landmarks/SUBSET/NAME_pts.mat
    (pts_2d, pts_3d (68, 2)), in Matlab's 1-based pixel centres as 300W-LP writes them."""
    for folder in (os.path.join(root, subset), os.path.join(root, "landmarks", subset)):
        os.makedirs(folder, exist_ok=True)
    one_based = 0.5  # continuous coordinates -> 1-based pixel centres (facekit.geometry)
    pose = np.concatenate([view.pose_rad, np.zeros(4)])[None]
    scipy.io.savemat(os.path.join(root, "landmarks", subset, f"{name}_pts.mat"),
                     {"pts_2d": view.pts_2d + one_based, "pts_3d": view.pts_3d + one_based})
    scipy.io.savemat(os.path.join(root, subset, f"{name}.mat"), {"pt2d": (view.pts_2d + one_based).T,
                                                                 "Pose_Para": pose})
    cv2.imwrite(os.path.join(root, subset, f"{name}.jpg"), view.image, [cv2.IMWRITE_JPEG_QUALITY, 95])


PROGRESS = "profile_progress.jsonl"  # one line per finished face: a rerun skips them
MANIFEST = "profile_manifest.json"
_WORKER: dict = {}


def _init_worker(model_path: str, input_dir: str, fmt: str, options, settings: dict) -> None:
    from facekit.profiling.fit import load_face_model
    from facekit.records.datasets import get_format

    _WORKER.update(model=load_face_model(model_path), input_dir=input_dir, reader=get_format(fmt), options=options,
                   settings=settings)


def _profile_item(item) -> dict:
    """Profile one listed face into the output folder; {"item", "views"} or {"item", "skipped": reason}."""
    from facekit.records.datasets import SampleError

    w, settings = _WORKER, _WORKER["settings"]
    try:
        sample = w["reader"].load_sample(w["input_dir"], item, w["options"])
        image = cv2.imread(sample.image_path)
        if image is None:
            raise SampleError(f"{sample.image_path}: missing or not an image")
        if len(sample.points_px) != 68:
            raise SampleError(f"{sample.source_id}: {len(sample.points_px)} points, profiling needs the 68 of iBUG")
        views = profile_face(image, sample.points_px, w["model"], settings["yaw_step"], settings["max_yaw"],
                             settings["max_error"])
    except (SampleError, ValueError) as error:
        return {"item": str(item), "skipped": str(error)}
    stem = os.path.splitext(sample.source_id)[0].replace("/", "_").replace("#", "_")
    for k, view in enumerate(views):
        write_300wlp_view(settings["output_dir"], settings["subset"], f"{stem}_{k}", view)
    return {"item": str(item), "views": len(views), "stem": stem}


def profile_dataset(input_dir: str, output_dir: str, fmt: str, model_path: str, yaw_step: float = 5.0,
                    max_yaw: float = 90.0, max_error: float = 0.08, workers: int = 1, subset: str | None = None,
                    progress: bool = True) -> dict:
    """Profile every face of a 68-point dataset into output_dir in the 300W-LP layout; resumable (faces listed in
    output_dir/profile_progress.jsonl are skipped). Returns (and writes) profile_manifest.json: counts, settings,
    and every skipped face with its reason. Writes preview.jpg: the first profiled face at every yaw."""
    import json
    import multiprocessing

    from tqdm import tqdm

    from facekit.records.datasets import ReaderOptions, get_format

    if yaw_step <= 0 or not 0 < max_yaw <= 90:
        raise ValueError(f"yaw step must be > 0 and max yaw in (0, 90] degrees, got {yaw_step} and {max_yaw}")
    reader, options = get_format(fmt), ReaderOptions()
    if reader.scheme.num_points != 68:
        raise ValueError(f"format {fmt!r} has {reader.scheme.num_points}-point faces; profiling needs iBUG 68")
    from facekit.profiling.fit import load_face_model

    load_face_model(model_path)  # fail early, naming the file
    items = reader.list_items(input_dir, options)
    os.makedirs(output_dir, exist_ok=True)
    log_path = os.path.join(output_dir, PROGRESS)
    done = {}
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    entry = json.loads(line)
                    done[entry["item"]] = entry
    todo = [item for item in items if str(item) not in done]
    settings = {"output_dir": output_dir, "subset": subset or os.path.basename(os.path.normpath(input_dir)).upper(),
                "yaw_step": yaw_step, "max_yaw": max_yaw, "max_error": max_error}
    init = (model_path, input_dir, fmt, options, settings)
    with open(log_path, "a", encoding="utf-8") as log:
        if workers > 1:
            pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, init)
            results = pool.imap_unordered(_profile_item, todo)
        else:
            pool = None
            _init_worker(*init)
            results = map(_profile_item, todo)
        try:
            for entry in tqdm(results, total=len(todo), desc="profiling", unit="face", disable=not progress):
                log.write(json.dumps(entry) + "\n")
                log.flush()
                done[entry["item"]] = entry
        finally:
            if pool is not None:
                pool.terminate()
    profiled = [e for e in done.values() if "views" in e]
    manifest = {"format": "300wlp", "source_format": fmt, "input_dir": input_dir, "faces": len(profiled),
                "views": sum(e["views"] for e in profiled), "yaw_step_deg": yaw_step, "max_yaw_deg": max_yaw,
                "max_fit_error": max_error, "subset": settings["subset"],
                "skipped": {e["item"]: e["skipped"] for e in done.values() if "skipped" in e},
                "landmarks": "pt2d and pts_2d: visible-outline jaw; pts_3d: surface jaw (landmarks/SUBSET/*_pts.mat)"}
    with open(os.path.join(output_dir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    if profiled:
        write_preview(output_dir, settings["subset"], min(profiled, key=lambda e: e["item"])["stem"])
    return manifest


def write_preview(output_dir: str, subset: str, stem: str, side: int = 192) -> None:
    """output_dir/preview.jpg: one face at every yaw, pts_2d green, pts_3d red where they differ."""
    from facekit.draw import draw_points, tile

    tiles, k = [], 0
    while os.path.exists(os.path.join(output_dir, subset, f"{stem}_{k}.jpg")):
        image = cv2.imread(os.path.join(output_dir, subset, f"{stem}_{k}.jpg"))
        marks = scipy.io.loadmat(os.path.join(output_dir, "landmarks", subset, f"{stem}_{k}_pts.mat"))
        scale = side / max(image.shape[:2])
        drawn = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        drawn = draw_points(drawn, (marks["pts_3d"] - 0.5) * scale, (0, 0, 255))
        drawn = draw_points(drawn, (marks["pts_2d"] - 0.5) * scale, (0, 255, 0))
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[:drawn.shape[0], :drawn.shape[1]] = drawn
        tiles.append(canvas)
        k += 1
    cv2.imwrite(os.path.join(output_dir, "preview.jpg"), tile(tiles, columns=min(len(tiles), 10)))


def faces_beyond_yaw(input_dir: str, fmt: str, model: FaceModel, min_yaw_deg: float) -> list[tuple[str, float]]:
    """(item path relative to input_dir, estimated yaw in degrees) of every face whose fitted |yaw| exceeds
    min_yaw_deg: the large-pose hold-out (AFW has real profiles), written as a --split-list for conversion."""
    from facekit.records.datasets import ReaderOptions, get_format

    reader, options = get_format(fmt), ReaderOptions()
    chosen = []
    for item in reader.list_items(input_dir, options):
        sample = reader.load_sample(input_dir, item, options)
        yaw = float(np.degrees(pose_angles(fit_points(sample.points_px, model).pose)[1]))
        if abs(yaw) > min_yaw_deg:
            chosen.append((str(item), yaw))
    return chosen
