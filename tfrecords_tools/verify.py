"""Check converted record folders against their manifests; one line per damaged shard, exit 1 if any.

    python -m tfrecords_tools.verify records/300wlp [records/helen_test ...] [--deep]

Fast (default): every shard exists, has the byte size and the record count the manifest recorded, and its
record headers chain without a cut. --deep: also each shard's SHA-256 and a full read checking every record's
CRC (reads all the bytes). Repair a damaged folder with the tool that wrote it and --repair: only the damaged
shards are converted again, byte-identical to the originals.
"""
from __future__ import annotations

import argparse
import sys

from facekit.records.verify import describe, is_verifiable, verify_folder


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="converted record folder(s)")
    p.add_argument("--deep", action="store_true", help="also SHA-256 and every record's CRC")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = 0
    for folder in args.folders:
        try:
            manifest, problems = verify_folder(folder, deep=args.deep)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        if problems:
            print(describe(folder, manifest, problems), file=sys.stderr)
            status = 1
            continue
        checks = "sizes, counts, headers" + (", SHA-256 and record CRCs" if args.deep else "")
        if not is_verifiable(manifest):
            checks = "counts and headers only: the manifest predates shard sizes and checksums"
        print(f"{folder}: {len(manifest['shards'])} shard(s), {manifest['num_records']} records ok; {checks}")
    return status


if __name__ == "__main__":
    sys.exit(main())
