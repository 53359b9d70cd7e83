"""Export a trained landmark run to SavedModel and TFLite (float32, float16, int8) and check parity.

    python freeze/export.py --run runs/senet [--formats saved_model,tflite_fp32,tflite_fp16,tflite_int8] [--out DIR]
    python freeze/export.py --mtcnn package --out runs/mtcnn_export          # the `mtcnn` package's weights
    python freeze/export.py --mtcnn runs/mtcnn_pnet runs/mtcnn_rnet runs/mtcnn_onet --out DIR   # trained here

Writes DIR (default RUN/export): saved_model/, MODEL_{fp32,fp16,int8}.tflite with MODEL_*.json beside each
(crop settings for the runtime), and report.json (size, max |diff| from Keras and NME per artifact). Exits 1 when
an artifact breaks parity (float32 within 1e-4 of the crop side, float16 NME within 0.05 points, int8 within 0.5).
With --mtcnn it writes DIR/mtcnn_{pnet,rnet,onet}.tflite (P-Net resizable) for facekit.infer.mtcnn.tflite_cascade.
A detector run (dbface, dbface_small, dbface_nano) exports with its decoding inside: uint8 RGB (1, S, S, 3) in
(--size, default: the letterbox side its validation picked at the end of training, the smallest within 0.005 AP of
the best; facekit.infer.detector.FaceDetector letterboxes photos into it), the top-K scores, boxes and points out;
the report holds box parity (float32 within 1e-3 px) and AP on the validation photos (float16 within 0.01 of
Keras, int8 within 0.03).
"""
from __future__ import annotations

import argparse
import os
import sys

from facekit.files import read_yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run directory written by training/train.py")
    p.add_argument("--mtcnn", nargs="+", metavar="SOURCE", help="'package' or the three MTCNN stage runs (P, R, O)")
    p.add_argument("--formats", default="saved_model,tflite_fp32,tflite_fp16,tflite_int8")
    p.add_argument("--out", help="output folder (default: RUN/export)")
    p.add_argument("--val-data", nargs="+", help="records for parity and NME (default: the run's validation data)")
    p.add_argument("--parity-count", type=int, default=64, help="validation crops compared with Keras")
    p.add_argument("--size", type=int, help="detectors: side of the square input, a multiple of 32 (default: the "
                   "letterbox the run's validation picked)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import models  # noqa: F401  (fills the registry)
    from facekit.alignment.export import export_run

    if args.mtcnn:
        return export_mtcnn_cli(args.mtcnn, args.out or os.path.join("runs", "mtcnn_export"))
    if not args.run:
        p.error("give --run RUN or --mtcnn SOURCE")
    out = args.out or os.path.join(args.run, "export")
    if is_detector_run(args.run):
        return export_detector_cli(args, out)
    report = reported(out, lambda: export_run(args.run, out, formats(args), val_dirs=args.val_data,
                                              parity_count=args.parity_count))
    if isinstance(report, int):
        return report
    print(f"{'artifact':<13} {'size':>10} {'max|diff| px':>13} {'NME %':>7}")
    print(f"{'keras':<13} {'':>10} {'':>13} {100 * report['keras']['nme']:>7.3f}")
    for fmt, a in report["artifacts"].items():
        print(f"{fmt:<13} {a['bytes']:>10,} {a['max_abs_diff_px']:>13.2e} {100 * a['nme']:>7.3f}")
    print(f"parity ok; written to {out}")
    return 0


def is_detector_run(run_dir: str) -> bool:
    from facekit.registry import get_spec

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return False
    return get_spec(read_yaml(path)["model"]).codec == "centernet"


def formats(args) -> list[str]:
    return [f.strip() for f in args.formats.split(",") if f.strip()]


def reported(out: str, export):
    """Run an export; its report, or the exit code after printing why it failed (1 parity, 2 bad input)."""
    from facekit.export import ParityError

    try:
        return export()
    except ParityError as error:
        print(f"parity FAILED ({out}/report.json): {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def export_detector_cli(args, out: str) -> int:
    from facekit.detection.dbface.export import export_detector_run

    report = reported(out, lambda: export_detector_run(args.run, out, formats(args), val_dirs=args.val_data,
                                                       size=args.size))
    if isinstance(report, int):
        return report
    print(f"{'artifact':<13} {'size':>10} {'max|box diff| px':>17} {'AP@0.5':>7}")
    print(f"{'keras':<13} {'':>10} {'':>17} {report['keras']['ap']:>7.4f}")
    for fmt, a in report["artifacts"].items():
        diff = a.get("max_box_head_diff_px", a["max_box_diff_px"])  # float32 TFLite: the dense box head
        print(f"{fmt:<13} {a['bytes']:>10,} {diff:>17.2e} {a['ap']:>7.4f}")
    print(f"parity ok; written to {out}")
    return 0


def export_mtcnn_cli(sources: list[str], out: str) -> int:
    from facekit.detection.mtcnn.networks import export_mtcnn, load_run_networks
    from models.mtcnn import imported_networks

    try:
        report = export_mtcnn(imported_networks() if sources == ["package"] else load_run_networks(sources), out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, entry in report.items():
        print(f"{name:<11} {entry['bytes']:>10,} bytes  max|diff| from Keras {entry['max_abs_diff']:.1e}")
    worst = max(entry["max_abs_diff"] for entry in report.values())
    if worst > 1e-4:
        print(f"parity FAILED: max |diff| {worst:.1e} > 1e-4 ({out}/report.json)", file=sys.stderr)
        return 1
    print(f"parity ok; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
