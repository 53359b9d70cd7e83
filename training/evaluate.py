"""Evaluate a trained run: NME, failure rate and AUC at 0.08 and 0.10, a table per yaw bin, CED plot, pictures.

    python training/evaluate.py --run runs/senet --data runs/synthetic/val --plot ced.png --grid worst.jpg
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run directory written by training/train.py")
    p.add_argument("--data", nargs="+", required=True, help="converted record folder(s) to evaluate on")
    p.add_argument("--normalize", default="inter_ocular", choices=["inter_ocular", "inter_pupil", "bbox"])
    p.add_argument("--json", help="write the metrics (fractions, not percent) to this file")
    p.add_argument("--plot", help="write the CED curve to this PNG")
    p.add_argument("--grid", help="write a picture grid of predicted (red) and true (green) points")
    p.add_argument("--worst", action="store_true", help="the grid shows the worst images first")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from facekit.alignment.evaluation import draw_predictions, evaluate_run, format_report, plot_ced, write_metrics
    from facekit.records.verify import require_intact

    try:
        for folder in args.data:
            require_intact(folder)
        result = evaluate_run(args.run, args.data, args.normalize)
        print(format_report(result))
        if args.json:
            write_metrics(result, args.json, args.run, args.data)
        if args.plot:
            plot_ced({os.path.basename(os.path.normpath(args.run)): result["nme"]}, args.plot)
        if args.grid:
            draw_predictions(result, args.grid, worst=args.worst)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
