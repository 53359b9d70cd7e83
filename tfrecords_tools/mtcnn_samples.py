"""Cut MTCNN training windows from detection records: 12 px (P-Net), 24 px (R-Net) or 48 px (O-Net) samples,
labelled negative / positive / part / landmark by IoU with the faces, with the cascade's regression targets.

    python -m tfrecords_tools.mtcnn_samples --stage pnet --data records/det_train --out records/mtcnn_pnet
    python -m tfrecords_tools.mtcnn_samples --stage rnet --data records/det_train --previous runs/mtcnn_pnet \
        --out records/mtcnn_rnet
    python -m tfrecords_tools.mtcnn_samples --stage onet --data records/det_train \
        --previous runs/mtcnn_pnet runs/mtcnn_rnet --out records/mtcnn_onet

R-Net and O-Net samples add hard examples: the boxes the previous trained stages propose on each image.
OUT/manifest.json counts samples per kind and per source folder; OUT/preview.jpg shows the first windows of each
kind with the face their targets decode to. An interrupted run resumes; the bytes do not depend on --workers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from facekit.detection.mtcnn.samples import STAGE_SIZES, SampleSettings
from facekit.records.convert import convert_dataset, repair_dataset
from facekit.records.schema import MANIFEST
from facekit.records.shards import ConversionError
from facekit.records.verify import repair_summary


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=list(STAGE_SIZES), required=True)
    p.add_argument("--data", nargs="+", required=True, help="detection record folder(s) (--task detection)")
    p.add_argument("--out", required=True, help="sample record folder")
    p.add_argument("--previous", nargs="*", default=[],
                   help="trained runs of the earlier stages: the P-Net run for rnet, P-Net and R-Net runs for onet")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores)")
    p.add_argument("--negatives", type=int, default=12, help="random windows per image (default 12)")
    p.add_argument("--candidates", type=int, default=10, help="jittered windows per face (default 10)")
    p.add_argument("--landmark-candidates", type=int, default=4,
                   help="jittered windows per face with five points, kept as landmark samples (default 4)")
    p.add_argument("--mined-negatives", type=int, default=24,
                   help="at most this many mined negative windows per image (default 24)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repair", action="store_true", help="rewrite only the shards of a finished conversion "
                   "that fail python -m tfrecords_tools.verify --deep (same arguments as the conversion)")
    p.add_argument("--overwrite", action="store_true", help="replace a different sample set in --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = SampleSettings(stage=args.stage, data_dirs=tuple(args.data), previous=tuple(args.previous),
                                  negatives_per_image=args.negatives, candidates_per_face=args.candidates,
                                  landmark_candidates_per_face=args.landmark_candidates,
                                  mined_negatives_per_image=args.mined_negatives, seed=args.seed)
        for folder in (*args.data, *args.previous):
            if not os.path.isdir(folder):
                raise ValueError(f"{folder}: no such folder")
        if args.repair:
            problems = repair_dataset(None, args.out, settings, workers=args.workers, progress=sys.stderr.isatty())
            print(repair_summary(args.out, problems))
            return 0
        reusable = not args.overwrite and os.path.exists(os.path.join(args.out, MANIFEST))
        start = time.perf_counter()
        manifest = convert_dataset(None, args.out, settings, workers=args.workers, overwrite=args.overwrite,
                                   progress=sys.stderr.isatty())
    except (ValueError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if reusable:
        print(f"{args.out} already holds these samples (same data and settings); --overwrite redoes them")
    counts = ", ".join(f"{count} {kind}" for kind, count in manifest["num_by_kind"].items())
    print(f"{manifest['num_records']} {args.stage} samples ({counts}) in {len(manifest['shards'])} shard(s) -> "
          f"{args.out} ({time.perf_counter() - start:.1f} s); {manifest['num_skipped']} images skipped")
    for reason, count in manifest["skipped_by_reason"].items():
        print(f"  skipped {count}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
