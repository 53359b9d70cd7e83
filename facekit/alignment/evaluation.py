"""Evaluate a trained run on converted records: per-sample NME, summary, yaw table, CED plot, picture grid."""
from __future__ import annotations

import cv2
import numpy as np

from facekit.alignment import data
from facekit.alignment.metrics import ced_curve, nme_by_region, nme_per_sample, summarize, summarize_by_yaw
from facekit.alignment.training import predict_points
from facekit.draw import draw_points, tile
from facekit.files import write_json
from facekit.training import load_run


def evaluate_run(run_dir: str, record_dirs: list[str], normalize: str = "inter_ocular") -> dict:
    """-> {"summary": metrics dict, "by_yaw": table, "by_region": region -> NME, "nme": (N,), "images",
    "points_pred", "points_true"}.

    Points are crop-normalised; NME is scale-free, so it is the same in crop pixels."""
    network, codec, _ = load_run(run_dir)
    scheme = data.record_scheme(record_dirs)
    arrays = data.evaluation_arrays(record_dirs, network.input_shape[1])
    predicted = predict_points(network, codec, arrays["image"])
    nme = nme_per_sample(predicted, arrays["points_norm"], scheme, normalize)
    return {"summary": {**summarize(nme), "normalize": normalize},
            "by_yaw": summarize_by_yaw(nme, arrays["pose_rad"][:, 1]),
            "by_region": nme_by_region(predicted, arrays["points_norm"], scheme, normalize),
            "nme": nme, "images": arrays["image"], "points_pred": predicted, "points_true": arrays["points_norm"]}


def write_metrics(result: dict, path: str, run_dir: str, record_dirs: list[str]) -> None:
    """The summary (fractions), the yaw table and the per-region NME as JSON."""
    write_json(path, {**result["summary"], "by_yaw": result["by_yaw"], "by_region": result["by_region"],
                      "run": run_dir, "data": record_dirs})


def format_report(result: dict) -> str:
    """A plain-text table of the summary and the yaw bins (percent)."""
    def row(name, s):
        if s is None:
            return f"{name:<10} {'-':>6}"
        return (f"{name:<10} {s['count']:>6} {100 * s['nme']:>7.2f} {100 * s['fr_0.08']:>7.2f} "
                f"{100 * s['fr_0.10']:>7.2f} {100 * s['auc_0.08']:>8.2f} {100 * s['auc_0.10']:>8.2f}")
    lines = [f"normalised by {result['summary']['normalize']}; values in percent",
             f"{'subset':<10} {'count':>6} {'NME':>7} {'FR@.08':>7} {'FR@.10':>7} {'AUC@.08':>8} {'AUC@.10':>8}",
             row("all", result["summary"])]
    lines += [row(f"yaw {name}", s) for name, s in result["by_yaw"].items()]
    lines.append("NME by region: " + ", ".join(f"{r} {100 * v:.2f}" for r, v in result["by_region"].items()))
    return "\n".join(lines)


def plot_ced(curves: dict, path: str, threshold: float = 0.10, markers: dict | None = None) -> None:
    """curves: label -> (N,) NME. Writes the cumulative error distribution up to threshold as a PNG; markers:
    label -> mean NME of a method known only by its mean, drawn as a dashed vertical line (not a curve)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for label, nme in curves.items():
        x, y = ced_curve(nme, threshold)
        ax.plot(100 * x, 100 * y, label=f"{label} (NME {100 * np.mean(nme):.2f}%)")
    for label, mean in (markers or {}).items():
        ax.axvline(100 * mean, color="grey", linestyle="--", label=f"{label} (mean NME {100 * mean:.2f}%)")
    ax.set(xlabel="NME (%)", ylabel="images (%)", xlim=(0, 100 * threshold), ylim=(0, 100),
           title="Cumulative error distribution")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_predictions(result: dict, path: str, count: int = 32, worst: bool = False) -> None:
    """Grid of crops with true points (green) and predictions (red); the worst NME first when worst=True."""
    order = np.argsort(-result["nme"]) if worst else np.arange(len(result["nme"]))
    size = result["images"].shape[1]
    tiles = []
    for i in order[:count]:
        image = cv2.cvtColor(result["images"][i], cv2.COLOR_RGB2BGR)
        image = draw_points(image, result["points_true"][i] * size, (0, 255, 0))
        image = draw_points(image, result["points_pred"][i] * size, (0, 0, 255))
        cv2.putText(image, f"{100 * result['nme'][i]:.1f}%", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(image)
    if not cv2.imwrite(path, tile(tiles)):
        raise ValueError(f"{path}: could not write the picture (unknown extension or unwritable folder?)")
