"""Profile a 68-point dataset into a large-pose one in the 300W-LP layout (3D morphable model fit + re-rendering).

    python -m tfrecords_tools.profile --format ibug68 --input DIR --output DIR [--yaw-step 5] [--max-yaw 90] \\
        [--model ../shared/data/face3d/bfm3ddfa_grid64.npz] [--workers 2]
    python -m tfrecords_tools.convert --format 300wlp --input DIR --output records/profiled   # reads it unchanged
    python -m tfrecords_tools.profile --format ibug68 --input 300W/afw --select-yaw 30 --split-list afw_yaw30.txt
    python -m tfrecords_tools.convert --format ibug68 --input 300W/afw --output records/afw_yaw30 \
        --split-list afw_yaw30.txt          # the large-pose validation faces: fitted |yaw| above 30 degrees

Each face is fitted (skipped and listed in profile_manifest.json when its fit error exceeds --max-fit-error of
the eye distance), then rendered from its own yaw outward every --yaw-step degrees up to --max-yaw: DIR/SUBSET/
NAME_K.jpg + .mat (pt2d, Pose_Para) and DIR/landmarks/SUBSET/NAME_K_pts.mat (pts_2d, pts_3d); K = 0 is the
face itself. Rerunning resumes. DIR/preview.jpg shows the first face at every yaw (pts_2d green, pts_3d red).
The morphable model is research-only data: nothing this writes may enter the repository.
"""
from __future__ import annotations

import argparse
import os
import sys

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "face3d",
                             "bfm3ddfa_grid64.npz")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", default="ibug68", help="a 68-point reader: ibug68, 300wlp, aflw2000")
    p.add_argument("--input", required=True)
    p.add_argument("--output", help="profiled views folder (300W-LP layout)")
    p.add_argument("--select-yaw", type=float, metavar="DEG", help="instead of profiling, list the faces whose "
                   "fitted |yaw| exceeds DEG in --split-list (for tfrecords_tools.convert --split-list)")
    p.add_argument("--split-list", help="with --select-yaw: the list file to write")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the face3d morphable model (.npz)")
    p.add_argument("--yaw-step", type=float, default=5.0)
    p.add_argument("--max-yaw", type=float, default=90.0)
    p.add_argument("--max-fit-error", type=float, default=0.08, help="fraction of the outer-eye-corner distance")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--subset", help="folder name under --output (default: the input folder's name, upper case)")
    args = p.parse_args(argv)
    from facekit.profiling.profile import profile_dataset

    if not os.path.isdir(args.input):
        print(f"error: --input {args.input}: no such folder", file=sys.stderr)
        return 2
    if (args.select_yaw is None) == (args.output is None) or (args.select_yaw is not None) != bool(args.split_list):
        print("error: give --output (profile), or --select-yaw with --split-list (list large-yaw faces)",
              file=sys.stderr)
        return 2
    if args.select_yaw is not None:
        return select_yaw(args)
    try:
        manifest = profile_dataset(args.input, args.output, args.format, args.model, args.yaw_step, args.max_yaw,
                                   args.max_fit_error, args.workers, args.subset)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{manifest['faces']} faces -> {manifest['views']} views in {args.output}; "
          f"{len(manifest['skipped'])} skipped (listed in profile_manifest.json); preview: {args.output}/preview.jpg")
    return 0


def select_yaw(args) -> int:
    from facekit.profiling.fit import load_face_model
    from facekit.profiling.profile import faces_beyond_yaw

    try:
        chosen = faces_beyond_yaw(args.input, args.format, load_face_model(args.model), args.select_yaw)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with open(args.split_list, "w", encoding="utf-8") as f:
        f.write(f"# faces of {args.input} whose fitted |yaw| exceeds {args.select_yaw:g} degrees\n")
        f.writelines(f"# yaw {yaw:+.1f}\n{item}\n" for item, yaw in chosen)
    print(f"{len(chosen)} faces with |yaw| > {args.select_yaw:g} degrees listed in {args.split_list}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
