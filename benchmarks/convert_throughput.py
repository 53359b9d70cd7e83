"""Converter throughput (images/s) with 1 and 2 workers next to a bound: a plain loop that only reads, decodes,
crops, resizes and JPEG-encodes the same images (crop boxes computed beforehand, outside the timing).

    python benchmarks/convert_throughput.py [--count 600] [--repeats 3] [--image-size 112] [--runner beam]

--runner beam (in the requirements-beam.txt environment) adds the Beam DirectRunner, in process and with 2
worker processes, next to the local converter.

Data: synthetic 300W-LP faces (450x450 JPEG + .mat, like the real dataset). Times are medians of --repeats runs,
each a full conversion into a fresh folder (worker start-up included, TensorFlow import excluded).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facekit.geometry import crop_and_resize, landmark_box_xyxy, square_crop_box  # noqa: E402
from facekit.records.convert import ConvertSettings, convert_dataset  # noqa: E402
from facekit.records.datasets import ReaderOptions, get_format  # noqa: E402
from facekit.records.synthetic import write_synthetic_300wlp  # noqa: E402


def bound_loop(jobs, size, quality):
    """Read + full decode + crop + resize + encode; nothing else."""
    for path, box in jobs:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        cv2.imencode(".jpg", crop_and_resize(image, box, size), [cv2.IMWRITE_JPEG_QUALITY, quality])


def converter_run(raw, tmp, settings, workers=1, runner="local", beam_args=()):
    """A timed run: a whole conversion into a fresh folder."""
    return lambda: convert_dataset(raw, tempfile.mkdtemp(dir=tmp), settings, workers=workers, progress=False,
                                   runner=runner, beam_args=beam_args)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=600, help="synthetic faces (plus 1/4 mirrored copies)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--runner", choices=["local", "beam"], default="local", help="beam: add Beam DirectRunner rows")
    args = p.parse_args(argv)
    # Imported here, not at the top: spawned workers re-import this script and must not load TensorFlow.
    import tensorflow  # noqa: F401  (so that no timed run pays for the import)

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw")
        n = write_synthetic_300wlp(raw, args.count)
        fmt = get_format("300wlp")
        settings = ConvertSettings("300wlp", image_size=args.image_size)
        samples = [fmt.load_sample(raw, i, ReaderOptions()) for i in fmt.list_items(raw, ReaderOptions())]
        jobs = [(s.image_path, square_crop_box(landmark_box_xyxy(s.points_px), 1 + 2 * settings.margin))
                for s in samples]
        full_decode = ConvertSettings("300wlp", image_size=args.image_size, reduced_decode=False)
        runs = {"bound: decode+crop+resize+encode loop": lambda: bound_loop(jobs, args.image_size, 95),
                "converter, 1 worker": converter_run(raw, tmp, settings, 1),
                "converter, 2 workers": converter_run(raw, tmp, settings, 2),
                "converter, 1 worker, --full-decode": converter_run(raw, tmp, full_decode, 1)}
        if args.runner == "beam":
            runs["Beam DirectRunner, in process"] = converter_run(raw, tmp, settings, runner="beam")
            runs["Beam DirectRunner, 2 processes"] = converter_run(
                raw, tmp, settings, runner="beam",
                beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
        rates = {label: n / timed(fn, args.repeats) for label, fn in runs.items()}
    bound = rates["bound: decode+crop+resize+encode loop"]
    one = rates["converter, 1 worker"]
    print(f"{n} images 450x450 -> {args.image_size}x{args.image_size}, median of {args.repeats} runs, "
          f"{os.cpu_count()} cores\n")
    print(f"| {'run':<38} | {'images/s':>8} | {'x bound':>7} | {'x 1 worker':>10} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 9}|{'-' * 12}|")
    for label, rate in rates.items():
        print(f"| {label:<38} | {rate:8.0f} | {rate / bound:7.2f} | {rate / one:10.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
