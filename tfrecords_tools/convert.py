"""Convert a raw dataset into sharded TFRecords with a manifest: square face crops for landmark models, or
(--task detection) whole images with every face's box and five points for detectors.

    python -m tfrecords_tools.convert --format 300wlp --input 300W_LP --output records/300wlp
    python -m tfrecords_tools.convert --format 300wlp --input 300W_LP --output records/300wlp --runner beam
    python -m tfrecords_tools.convert            # built-in default: synthetic 300W-LP faces, no download
    python -m tfrecords_tools.convert --task detection --format widerface --input WIDER_train/images \
        --annotations wider_face_split/wider_face_train_bbx_gt.txt --output records/wider_train [--max-side 1024]

Landmark formats: 300wlp, aflw2000, ibug68 (.pts), wflw (--annotations LIST.txt), mtfl (training.txt).
Detection formats: widerface (bbx_gt.txt), retinaface (label.txt), images (face-free negatives), and every
landmark format (one face per image, box from the landmarks).
Bad samples are skipped and listed in OUTPUT/manifest.json; an interrupted run resumes when started again.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from facekit.detection.convert import DETECTION_FORMATS, DetectionSettings
from facekit.records.convert import (
    BOX_SOURCES,
    OUTSIDE_POLICIES,
    POINT_SETS,
    RUNNERS,
    ConvertSettings,
    convert_dataset,
    repair_dataset,
)
from facekit.records.datasets import FORMATS, ReaderOptions
from facekit.records.datasets.mat3d import LANDMARK_SOURCES
from facekit.records.schema import MANIFEST
from facekit.records.shards import ConversionError
from facekit.records.verify import repair_summary

SYNTHETIC_DEFAULT = os.path.join("runs", "synthetic")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["landmarks", "detection"], default="landmarks",
                   help="landmarks: one face crop per record; detection: one whole image with all its faces")
    p.add_argument("--format", choices=DETECTION_FORMATS, default="300wlp")
    p.add_argument("--input", help="raw dataset folder (default: generate synthetic 300W-LP faces)")
    p.add_argument("--output", help=f"record folder (default with no --input: {SYNTHETIC_DEFAULT}/records)")
    p.add_argument("--image-size", type=int, default=112, help="crop side in pixels (default 112)")
    p.add_argument("--margin", type=float, default=0.2, help="margin on each side, fraction of the face box")
    p.add_argument("--runner", choices=RUNNERS, default="local",
                   help="local: --workers processes; beam: an Apache Beam pipeline (pip install -r "
                   "requirements-beam.txt), DirectRunner unless --beam-args names another")
    p.add_argument("--beam-args", default="", help='Beam pipeline options as one string, e.g. "--runner=FlinkRunner '
                   '--flink_master=HOST:8081" or "--direct_num_workers=2 --direct_running_mode=multi_processing"')
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores)")
    p.add_argument("--split-list", help="file of image paths (relative to --input) to convert; others are left out")
    p.add_argument("--name", help="shard file prefix (default: the format)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--box-source", choices=BOX_SOURCES, default="landmarks",
                   help="crop around the landmarks or the annotated face box (WFLW)")
    p.add_argument("--points", choices=POINT_SETS, default="all",
                   help="landmarks: all of the format's points, or five (eye centres, nose tip, mouth corners) "
                   "for five-point models trained on 68-point sources")
    p.add_argument("--outside", choices=OUTSIDE_POLICIES,
                   help="faces with landmarks outside the photo: skip, or keep them (points keep their crop "
                   "coordinates; the crop pads with zeros). Default: keep for 300wlp and aflw2000, else skip")
    p.add_argument("--landmarks-source", choices=LANDMARK_SOURCES, default="pt2d",
                   help="300W-LP: pt2d in NAME.mat, or pts_2d / pts_3d in landmarks/SUBSET/NAME_pts.mat")
    p.add_argument("--exclude-300w-test", action="store_true",
                   help="300W-LP: leave out images derived from 300W test sets (IBUG, LFPW test)")
    p.add_argument("--annotations", help="annotation list for wflw (required) and mtfl (default training.txt)")
    p.add_argument("--max-side", type=int, default=1024, help="detection: resize longer image sides to this")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--full-decode", action="store_true",
                   help="always decode JPEGs at full size (default: reduced DCT decoding when the crop shrinks 2x+)")
    p.add_argument("--synthetic-count", type=int, default=300, help="faces generated when --input is omitted")
    p.add_argument("--repair", action="store_true", help="rewrite only the shards of a finished conversion "
                   "that fail python -m tfrecords_tools.verify --deep (same arguments as the conversion)")
    p.add_argument("--overwrite", action="store_true", help="replace a different conversion in --output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.input is None:
        if args.format != "300wlp" or args.task == "detection":
            print("error: --input is required except for the synthetic 300wlp landmark default", file=sys.stderr)
            return 2
        from facekit.records.synthetic import write_synthetic_300wlp

        args.input = os.path.join(SYNTHETIC_DEFAULT, "raw")
        args.output = args.output or os.path.join(SYNTHETIC_DEFAULT, "records")
        if not os.path.isdir(args.input):
            n = write_synthetic_300wlp(args.input, args.synthetic_count)
            print(f"generated {n} synthetic 300W-LP images in {args.input}")
    if args.output is None:
        print("error: --output is required with --input", file=sys.stderr)
        return 2
    if args.task == "landmarks" and args.format not in FORMATS:
        print(f"error: --format {args.format} is a detection format; add --task detection", file=sys.stderr)
        return 2
    try:
        settings = DetectionSettings(
            format=args.format, max_side=args.max_side, annotations=args.annotations,
            shard_size=args.shard_size, jpeg_quality=args.jpeg_quality) if args.task == "detection" else \
            ConvertSettings(
                format=args.format, image_size=args.image_size, margin=args.margin, box_source=args.box_source,
                shard_size=args.shard_size, jpeg_quality=args.jpeg_quality, reduced_decode=not args.full_decode,
                outside=args.outside, points=args.points,
                reader=ReaderOptions(landmarks_source=args.landmarks_source,
                                     exclude_300w_test=args.exclude_300w_test, annotations=args.annotations))
        if args.repair:
            problems = repair_dataset(args.input, args.output, settings, name=args.name, workers=args.workers,
                                      split_list=args.split_list, progress=sys.stderr.isatty())
            print(repair_summary(args.output, problems))
            return 0
        reusable = not args.overwrite and os.path.exists(os.path.join(args.output, MANIFEST))
        start = time.perf_counter()
        manifest = convert_dataset(args.input, args.output, settings, name=args.name, workers=args.workers,
                                   split_list=args.split_list, overwrite=args.overwrite,
                                   progress=sys.stderr.isatty(), runner=args.runner,
                                   beam_args=shlex.split(args.beam_args))
    except (ValueError, ConversionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    if reusable:
        print(f"{args.output} already holds this conversion (same input and settings); --overwrite redoes it")
    faces = f", {manifest['num_faces']} faces" if "num_faces" in manifest else ""
    print(f"{manifest['num_records']} records{faces} in {len(manifest['shards'])} shard(s) -> {args.output} "
          f"({seconds:.1f} s); {manifest['num_skipped']} skipped")
    for reason, count in manifest["skipped_by_reason"].items():
        print(f"  skipped {count}: {reason}")
    if manifest.get("faces_with_points_outside_image"):
        print(f"  kept {manifest['faces_with_points_outside_image']} faces with landmarks outside their photo "
              "(--outside keep)")
    for reason, count in manifest.get("dropped_faces_by_reason", {}).items():
        print(f"  faces left out {count}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
