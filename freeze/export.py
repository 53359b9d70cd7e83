"""Export a trained landmark run to SavedModel and TFLite (float32, float16, int8) and check parity.

    python freeze/export.py --run runs/senet [--formats saved_model,tflite_fp32,tflite_fp16,tflite_int8] [--out DIR]

Writes DIR (default RUN/export): saved_model/, MODEL_{fp32,fp16,int8}.tflite with MODEL_*.json beside each
(crop settings for the runtime), and report.json (size, max |diff| from Keras and NME per artifact). Exits 1 when
an artifact breaks parity (float32 within 1e-4 of the crop side, float16 NME within 0.05 points, int8 within 0.5).
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run directory written by training/train.py")
    p.add_argument("--formats", default="saved_model,tflite_fp32,tflite_fp16,tflite_int8")
    p.add_argument("--out", help="output folder (default: RUN/export)")
    p.add_argument("--val-data", nargs="+", help="records for parity and NME (default: the run's validation data)")
    p.add_argument("--parity-count", type=int, default=64, help="validation crops compared with Keras")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import models  # noqa: F401  (fills the registry)
    from facekit.export import ParityError, export_run

    out = args.out or os.path.join(args.run, "export")
    try:
        report = export_run(args.run, out, [f.strip() for f in args.formats.split(",") if f.strip()],
                            val_dirs=args.val_data, parity_count=args.parity_count)
    except ParityError as error:
        print(f"parity FAILED ({out}/report.json): {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{'artifact':<13} {'size':>10} {'max|diff| px':>13} {'NME %':>7}")
    print(f"{'keras':<13} {'':>10} {'':>13} {100 * report['keras']['nme']:>7.3f}")
    for fmt, a in report["artifacts"].items():
        print(f"{fmt:<13} {a['bytes']:>10,} {a['max_abs_diff_px']:>13.2e} {100 * a['nme']:>7.3f}")
    print(f"parity ok; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
