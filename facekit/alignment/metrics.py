"""Landmark accuracy: NME, failure rate, cumulative error distribution (CED) and its area (AUC).

Conventions follow the public evaluation codes (PFLD, PIPNet, HRNet): NME is the mean point-to-point distance
divided by a normalising distance; failure rate at t is the fraction of samples with NME > t; AUC at t is the
area under the CED on [0, t] divided by t, the CED sampled every 1e-4 (as PIPNet's code does) and integrated
with Simpson's rule.
All values are fractions, not percent.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import simpson

from facekit.landmarks import LandmarkScheme, point_regions

NORMALIZERS = ("inter_ocular", "inter_pupil", "bbox")


def normalizing_distance(points_true: np.ndarray, scheme: LandmarkScheme, normalize: str) -> np.ndarray:
    """points_true (N, K, 2) -> (N,) distance; "bbox" is sqrt(width * height) of the true landmarks' box."""
    if normalize == "bbox":
        size = points_true.max(axis=1) - points_true.min(axis=1)
        return np.sqrt(size[:, 0] * size[:, 1])
    return scheme.normalizing_distance(points_true, normalize)


def normalized_point_errors(points_pred: np.ndarray, points_true: np.ndarray, scheme: LandmarkScheme,
                            normalize: str = "inter_ocular") -> np.ndarray:
    """(N, K, 2) predictions and truths in one frame -> (N, K) point-to-point distances over each sample's
    normalising distance."""
    points_pred, points_true = np.asarray(points_pred, np.float64), np.asarray(points_true, np.float64)
    if points_pred.shape != points_true.shape:
        raise ValueError(f"prediction shape {points_pred.shape} != truth shape {points_true.shape}")
    error = np.linalg.norm(points_pred - points_true, axis=-1)
    return error / normalizing_distance(points_true, scheme, normalize)[:, None]


def nme_per_sample(points_pred: np.ndarray, points_true: np.ndarray, scheme: LandmarkScheme,
                   normalize: str = "inter_ocular") -> np.ndarray:
    """(N, K, 2) predictions and truths in one frame -> (N,) normalised mean error."""
    return normalized_point_errors(points_pred, points_true, scheme, normalize).mean(axis=-1)


def nme_by_region(points_pred: np.ndarray, points_true: np.ndarray, scheme: LandmarkScheme,
                  normalize: str = "inter_ocular") -> dict[str, float]:
    """Mean NME of each face region (jaw, brows, nose, eyes, mouth): the points' errors of a region, normalised
    per sample as in nme_per_sample, averaged over its points and the samples."""
    error = normalized_point_errors(points_pred, points_true, scheme, normalize)
    return {region: float(error[:, idx].mean()) for region, idx in point_regions(scheme.point_names).items()}


def ced_curve(nme: np.ndarray, threshold: float, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(N,) NME -> (x, fraction of samples with NME <= x) for x in [0, threshold] every `step`."""
    x = np.linspace(0.0, threshold, int(round(threshold / step)) + 1)
    y = (np.asarray(nme)[None, :] <= x[:, None]).mean(axis=1)
    return x, y


def auc(nme: np.ndarray, threshold: float, step: float = 1e-4) -> float:
    x, y = ced_curve(nme, threshold, step)
    return float(simpson(y, x=x) / threshold)


def failure_rate(nme: np.ndarray, threshold: float) -> float:
    return float((np.asarray(nme) > threshold).mean())


def summarize(nme: np.ndarray) -> dict:
    """(N,) NME -> {"nme", "fr_0.08", "fr_0.10", "auc_0.08", "auc_0.10", "count"} as fractions."""
    nme = np.asarray(nme, np.float64)
    if nme.size == 0:
        raise ValueError("no samples to summarise")
    return {"nme": float(nme.mean()), "fr_0.08": failure_rate(nme, 0.08), "fr_0.10": failure_rate(nme, 0.10),
            "auc_0.08": auc(nme, 0.08), "auc_0.10": auc(nme, 0.10), "count": int(nme.size)}


YAW_BINS_DEG = ((0, 30), (30, 60), (60, 90))


def summarize_by_yaw(nme: np.ndarray, yaw_rad: np.ndarray) -> dict:
    """Per |yaw| bin ("0-30", "30-60", "60-90" degrees; 90 and above falls in the last) -> summary or None."""
    yaw = np.abs(np.degrees(yaw_rad))
    table = {}
    for low, high in YAW_BINS_DEG:
        inside = (yaw >= low) & ((yaw < high) | (high == 90))
        table[f"{low}-{high}"] = summarize(nme[inside]) if inside.any() else None
    return table
