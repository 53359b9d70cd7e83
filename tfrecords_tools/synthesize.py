"""Write a synthetic face dataset in the 300W-LP layout.

    python -m tfrecords_tools.synthesize --out data/synthetic_300wlp [--count 400] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys

from facekit.records.synthetic import write_synthetic_300wlp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (AFW/, HELEN/, ..., landmarks/)")
    parser.add_argument("--count", type=int, default=400, help="faces before mirrored copies (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=450, help="image side in pixels (300W-LP: 450)")
    args = parser.parse_args(argv)
    written = write_synthetic_300wlp(args.out, args.count, seed=args.seed, size=args.size)
    print(f"wrote {written} synthetic 300W-LP images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
