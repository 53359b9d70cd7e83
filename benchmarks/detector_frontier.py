"""The detection frontier: accuracy against phone latency for every detector point, side by side with MediaPipe's
BlazeFace (from the mediapipe==0.10.21 wheel: pip install --no-deps -r requirements-baselines.txt).

    python benchmarks/detector_frontier.py --dbface runs/dbface_accuracy/dbface_nano [RUN ...] \\
        [--mtcnn-runs P_RUN R_RUN O_RUN] [--sizes 160 192 256 320 640] [--out runs/frontier]

One row per point: BlazeFace short and full (score cut-off 0.05); our LiteRT MTCNN cascade with the `mtcnn`
package's weights (and with --mtcnn-runs, weights trained here) at min_face 20, 40 and 80 (thresholds 0.6/0.7/0.7);
each DBFace run exported (TFLite float32 and int8) at every --sizes letterbox (score >= 0.05, NMS 0.4), and with
--refiner each float32 point again with its five points from a five-point refiner (benchmarks/five_point_refiner.py)
run on a crop of each box and then (--refiner-passes 2) on a crop of the points it found (its cost is in the time),
and each int8 point with the refiner's int8 export beside it (MODEL_int8.tflite), when there is one. Columns: AP@0.5
on the AFW photos (WIDER protocol, all 185), NME of the five points of matched AFW faces (inter-ocular; BlazeFace
gives eyes and nose only), AP on the crowd validation photos (the WIDER subset's held-out split,
ROOT/records/wider_val of benchmarks/dbface_accuracy.py), model bytes, and the latency of one whole detect() call on
a 640x480 photo with 1 and with 2 LiteRT threads (a fresh process per cell, median of --repeats runs after warm-up,
score threshold 0.5; each cell measured in --rounds interleaved rounds, the least of them reported: a shared host's
contention only adds time). Prints the table and draws OUT/frontier.png: AFW AP against ms (log scale) with each
family's frontier as a line. A second table gives each point's AFW recall (IoU 0.5, score >= 0.05: the most its AP
curve reaches) by face size, as a share of the photo's long side: what bounds it. Results are kept in
OUT/results.json: a rerun measures only the missing points (--fresh: all). Latency is only meaningful on an
otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
AFW = os.path.join(SHARED, "afw_detection")
CROWD = os.path.join("runs", "dbface_accuracy", "records", "wider_val")
AP_SCORE, TIMING_SCORE = 0.05, 0.5
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
PHOTO_HW = (480, 640)
SIZE_BINS = (0.0, 0.04, 0.08, 0.16, 0.32, 1.01)  # face side (sqrt of box area) / the photo's long side


def make_detector(point: dict, threads: int | None, score: float):
    """A point's TF-free detector: an object with detect(image, color=...) -> Detections."""
    if point["kind"] == "blazeface":
        from facekit.infer.blazeface import BlazeFaceDetector
        return BlazeFaceDetector(point["model"], threads, score_threshold=score)
    if point["kind"] == "mtcnn":
        from facekit.infer.mtcnn import tflite_cascade
        return tflite_cascade(point["path"], threads, thresholds=MTCNN_THRESHOLDS, min_face=point["min_face"])
    from facekit.infer.detector import FaceDetector
    detector = FaceDetector(point["path"], threads, score_threshold=score)
    if point.get("refiner"):
        from facekit.infer.pipeline import FivePointRefiner
        from facekit.infer.runtime import LandmarkPredictor
        return FivePointRefiner(detector, LandmarkPredictor(point["refiner"], threads), point.get("passes", 1))
    return detector


def model_bytes(point: dict) -> int:
    if point["kind"] == "blazeface":
        from facekit.infer.blazeface import baseline_model_path
        return os.path.getsize(baseline_model_path(point["model"]))
    if point["kind"] == "mtcnn":
        return sum(os.path.getsize(os.path.join(point["path"], f"mtcnn_{s}.tflite")) for s in ("pnet", "rnet", "onet"))
    return os.path.getsize(point["path"]) + (os.path.getsize(point["refiner"]) if point.get("refiner") else 0)


def accuracy(point: dict, afw: list[dict], crowd: list[dict]) -> dict:
    """AFW AP, matched five-point NME and crowd AP of one point (RGB photos with boxes, points, invalid flags)."""
    from facekit.detection.evaluation import average_precision, matched_point_nme

    detector = make_detector(point, None, AP_SCORE)
    result = {}
    for name, photos in (("afw", afw), ("crowd", crowd)):
        found = [detector.detect(p["image"], color="rgb") for p in photos]
        result[f"{name}_ap"] = average_precision([(d.boxes_xyxy, d.scores) for d in found],
                                                 [p["boxes_xyxy"] for p in photos], [p["invalid"] for p in photos])
        if name == "afw":
            result["afw_nme"], result["afw_nme_faces"] = matched_point_nme(
                found, [p["boxes_xyxy"] for p in photos], [p["landmarks_px"] for p in photos])
            result["afw_recall_by_size"] = recall_by_size(found, photos)
    return result


def recall_by_size(found: list, photos: list[dict]) -> list[list[int]]:
    """[found, faces] per SIZE_BINS bin: valid faces matched by any detection at IoU >= 0.5."""
    from facekit.boxes import box_iou

    counts = np.zeros((len(SIZE_BINS) - 1, 2), int)
    for detections, photo in zip(found, photos):
        boxes = photo["boxes_xyxy"][~photo["invalid"]]
        if not len(boxes):
            continue
        side = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)) / max(photo["image"].shape[:2])
        bins = np.clip(np.digitize(side, SIZE_BINS) - 1, 0, len(SIZE_BINS) - 2)
        hit = (box_iou(boxes, detections.boxes_xyxy).max(axis=1) >= 0.5) if len(detections) else np.zeros(len(boxes))
        np.add.at(counts, (bins, 0), hit.astype(int))
        np.add.at(counts, (bins, 1), 1)
    return counts.tolist()


def time_point(point: dict, photo_path: str, threads: int, repeats: int) -> float:
    """Median ms of detect() on the photo, measured in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--time-point", json.dumps(point), photo_path, str(threads),
                          str(repeats)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"timing {point['name']} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def time_child(point_json: str, photo_path: str, threads: str, repeats: str) -> None:
    point, image = json.loads(point_json), np.load(photo_path)
    detector = make_detector(point, int(threads), TIMING_SCORE)
    for _ in range(3):
        detector.detect(image, color="rgb")
    times = []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        detector.detect(image, color="rgb")
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1000 * float(np.median(times))}))


def read_photos(gt: str, images: str) -> list[dict]:
    """Photos of a WIDER bbx_gt / RetinaFace label.txt annotation as RGB arrays with their truth."""
    import cv2

    from facekit.records.datasets.wider import read_wider_annotations

    photos = []
    for item in read_wider_annotations(gt):
        image = cv2.imread(os.path.join(images, item.path))
        if image is None:
            raise SystemExit(f"error: {os.path.join(images, item.path)}: missing or not an image")
        photos.append({"image": image[..., ::-1].copy(), "boxes_xyxy": item.boxes_xyxy, "invalid": item.invalid,
                       "landmarks_px": item.landmarks_px})
    return photos


def detector_points(args, work: str) -> list[dict]:
    """Every point to measure; exports the DBFace runs and the MTCNN cascades first (skipped when present)."""
    points = []
    if not args.no_blazeface:
        points += [{"family": "BlazeFace", "name": name, "kind": "blazeface", "model": name, "marker": "*"}
                   for name in ("blazeface-short", "blazeface-full")]
    cascades = ([("mtcnn package", ["package"])] if not args.no_mtcnn else []) + (
        [("mtcnn trained here", args.mtcnn_runs)] if args.mtcnn_runs else [])
    for family, sources in cascades:
        folder = os.path.join(work, family.replace(" ", "_"))
        if not os.path.isfile(os.path.join(folder, "mtcnn_onet.tflite")):
            export_mtcnn_cascade(sources, folder)
        points += [{"family": family, "name": f"{family} min {m}", "kind": "mtcnn", "path": folder, "min_face": m,
                    "marker": "s"} for m in (20, 40, 80)]
    for run in args.dbface or []:
        name = os.path.basename(os.path.normpath(run))  # the run's folder: two runs of one model stay apart
        for size in args.sizes:
            folder = os.path.join(work, f"{name}_{size}")
            model = export_dbface(run, folder, size)
            plain = {}
            for fmt, marker in (("fp32", "o"), ("int8", "^")):
                plain[fmt] = {"family": name, "name": f"{name} {fmt} {size}", "kind": "dbface", "marker": marker,
                              "path": os.path.join(folder, f"{model}_{fmt}.tflite"), "size": size}
                points.append(plain[fmt])
            if args.refiner:  # same boxes, five points from the refiner (int8 beside int8): its NME and its cost
                for fmt, refiner_path, marker in (("fp32", args.refiner, "D"),
                                                  ("int8", int8_sibling(args.refiner), "d")):
                    if refiner_path is None:
                        continue
                    refiner = os.path.splitext(os.path.basename(refiner_path))[0] + (
                        f" x{args.refiner_passes}" if args.refiner_passes > 1 else "")
                    points.append({**plain[fmt], "family": f"{name} {fmt} + {refiner}", "marker": marker,
                                   "name": f"{name} {fmt} {size} + {refiner}", "refiner": refiner_path,
                                   "passes": args.refiner_passes})
    return points


def int8_sibling(path: str) -> str | None:
    """MODEL_int8.tflite beside a MODEL_fp32.tflite (freeze/export.py writes both), if it is there."""
    sibling = path.replace("_fp32.tflite", "_int8.tflite")
    return sibling if sibling != path and os.path.isfile(sibling) else None


def export_mtcnn_cascade(sources: list[str], folder: str) -> None:
    import models  # noqa: F401
    from facekit.detection.mtcnn.networks import export_mtcnn, load_run_networks
    from models.mtcnn import imported_networks

    export_mtcnn(imported_networks() if sources == ["package"] else load_run_networks(sources), folder)


def export_dbface(run: str, folder: str, size: int) -> str:
    """Export a DBFace run at size (float32 and int8) into folder unless done; returns the model's name."""
    from facekit.files import read_yaml

    model = read_yaml(os.path.join(run, "config.yaml"))["model"]
    if not os.path.isfile(os.path.join(folder, f"{model}_int8.tflite")):
        import models  # noqa: F401
        from facekit.detection.dbface.export import export_detector_run
        from facekit.export import ParityError

        try:
            export_detector_run(run, folder, ["tflite_fp32", "tflite_int8"], size=size)
        except ParityError as error:  # the report is written; the frontier still measures what was exported
            print(f"note: {run} at {size}: {error}")
    return model


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(ms, ap) points -> those no faster point beats, by ms: the family's frontier."""
    best, line = -1.0, []
    for ms, ap in sorted(points):
        if ap > best:
            line.append((ms, ap))
            best = ap
    return line


def draw(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 6))
    for family in dict.fromkeys(r["family"] for r in rows):
        members = [r for r in rows if r["family"] == family]
        line = frontier([(r["ms_1"], r["afw_ap"]) for r in members])
        drawn = ax.plot(*zip(*line), "-", alpha=0.6, label=family)[0]
        for r in members:
            ax.plot(r["ms_1"], r["afw_ap"], r["marker"], color=drawn.get_color(), markersize=9 if
                    r["marker"] == "*" else 6)
            ax.annotate(r["name"].split()[-1] if r.get("size") else r["name"], (r["ms_1"], r["afw_ap"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("ms per 640x480 photo, LiteRT, 1 thread (log scale)")
    ax.set_ylabel("AFW AP@0.5")
    ax.set_title("Detection frontier: o float32, ^ int8, D / d float32 / int8 + five-point refiner, * BlazeFace, "
                 "s MTCNN", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dbface", nargs="*", help="DBFace training runs to export and measure")
    p.add_argument("--mtcnn-runs", nargs=3, metavar="RUN", help="P, R and O runs of an MTCNN trained here")
    p.add_argument("--refiner", help="a five-point landmark .tflite (benchmarks/five_point_refiner.py): adds each "
                   "DBFace point with its five points refined (facekit.infer.pipeline.FivePointRefiner); int8 "
                   "points with the MODEL_int8.tflite beside it, when there is one")
    p.add_argument("--refiner-passes", type=int, default=2, help="refiner calls per face, each cropping from the "
                   "last one's points (2: chosen on the validation mosaics, benchmarks/five_point_refiner.py)")
    p.add_argument("--sizes", nargs="+", type=int, default=[160, 192, 256, 320, 640], help="DBFace letterboxes")
    p.add_argument("--afw-gt", default=os.path.join(AFW, "label.txt"))
    p.add_argument("--afw-images", default=os.path.join(AFW, "images"))
    p.add_argument("--crowd", default=CROWD, help="detection records of the crowd validation photos")
    p.add_argument("--out", default=os.path.join("runs", "frontier"))
    p.add_argument("--repeats", type=int, default=30, help="timed detect() calls per cell (their median)")
    p.add_argument("--rounds", type=int, default=3, help="times each cell is measured, in a fresh process, every "
                   "point once a round, the order reversed every other round (the least is reported: a shared host's "
                   "contention only adds time)")
    p.add_argument("--retime", action="store_true", help="measure every point's latency again (accuracy is kept)")
    p.add_argument("--no-blazeface", action="store_true")
    p.add_argument("--no-mtcnn", action="store_true")
    p.add_argument("--fresh", action="store_true", help="measure every point again")
    p.add_argument("--time-point", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.time_point:
        time_child(*args.time_point)
        return 0
    for flag, path in (("--afw-gt", args.afw_gt), ("--afw-images", args.afw_images), ("--crowd", args.crowd)):
        if not os.path.exists(path):
            print(f"error: {flag} {path}: no such file or folder", file=sys.stderr)
            return 2
    import cv2
    from tqdm import tqdm

    from facekit.detection.data import evaluation_scenes
    from facekit.files import read_json, write_json

    os.makedirs(args.out, exist_ok=True)
    afw, crowd = read_photos(args.afw_gt, args.afw_images), evaluation_scenes([args.crowd])
    photo_path = os.path.join(args.out, "photo_640x480.npy")
    np.save(photo_path, cv2.resize(afw[0]["image"], PHOTO_HW[::-1], interpolation=cv2.INTER_AREA))
    results_path = os.path.join(args.out, "results.json")
    results = {} if args.fresh or not os.path.isfile(results_path) else read_json(results_path)
    points = detector_points(args, os.path.join(args.out, "models"))
    for point in tqdm(points, desc="accuracy", unit="point", disable=None):
        if point["name"] not in results:
            results[point["name"]] = {**point, "bytes": model_bytes(point), **accuracy(point, afw, crowd)}
            write_json(results_path, results)
    timed = [p for p in points if args.retime or "ms_1" not in results[p["name"]]]
    times = {p["name"]: {1: [], 2: []} for p in timed}
    for round_index in tqdm(range(args.rounds), desc="timing rounds", disable=None):
        for point in timed if round_index % 2 == 0 else timed[::-1]:  # drift spread over every point alike
            for threads in (1, 2):
                times[point["name"]][threads].append(time_point(point, photo_path, threads, args.repeats))
    for name, by_threads in times.items():
        results[name].update({f"ms_{t}": float(np.min(ms)) for t, ms in by_threads.items()})
    write_json(results_path, results)
    rows = [results[point["name"]] for point in points]
    print("| detector | AFW AP | 5-pt NME (faces) | crowd AP | bytes | ms, 1 thread | ms, 2 threads |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        nme = f"{r['afw_nme']:.3f} ({r['afw_nme_faces']})" if r["afw_nme_faces"] else "-"
        print(f"| {r['name']} | {r['afw_ap']:.3f} | {nme} | {r['crowd_ap']:.3f} | {r['bytes']:,} | "
              f"{r['ms_1']:.2f} | {r['ms_2']:.2f} |")
    edges = [f"{100 * a:g}-{100 * b:g}%" for a, b in zip(SIZE_BINS[:-2], SIZE_BINS[1:-1])] + [
        f">{100 * SIZE_BINS[-2]:g}%"]
    print("\nAFW recall (IoU 0.5, score >= 0.05) by face side as a share of the photo's long side (faces):")
    print("| detector | " + " | ".join(edges) + " |")
    print("|---|" + "---|" * len(edges))
    for r in rows:
        cells = [f"{hit / max(total, 1):.2f} ({total})" for hit, total in r.get("afw_recall_by_size", [])] or \
            ["-"] * len(edges)
        print(f"| {r['name']} | " + " | ".join(cells) + " |")
    draw(rows, os.path.join(args.out, "frontier.png"))
    print(f"frontier drawn in {os.path.join(args.out, 'frontier.png')}; results in {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
