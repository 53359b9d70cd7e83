"""Latency per face of exported landmark models: each TFLite format with 1 thread and all threads, next to the
Keras model's predict_on_batch, with model sizes. Median and p90 over --repeats runs after --warmup runs.

    python benchmarks/latency.py --runs runs/pfld_025 runs/senet [--repeats 300]

Each run needs an export (python freeze/export.py --run RUN) in RUN/export.
"""
from __future__ import annotations

import argparse
import functools
import glob
import os
import sys
import time

import numpy as np


def timed(fn, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def tflite_latency_ms(path: str, threads: int = 1, warmup: int = 30, repeats: int = 300) -> tuple[float, float]:
    """Median and p90 milliseconds of one uint8 face through a landmark .tflite."""
    from facekit.infer.runtime import TFLiteModel

    model = TFLiteModel(path, threads)
    image = np.random.default_rng(0).integers(0, 256, (1, model.input_size, model.input_size, 3), dtype=np.uint8)
    return timed(lambda: model(image), warmup, repeats)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from facekit.infer.runtime import TFLiteModel

    threads_all = os.cpu_count()
    print(f"latency per face (ms), batch 1, median / p90 of {args.repeats} runs after {args.warmup} warm-up; "
          f"{threads_all} cores")
    print(f"{'model':<10} {'format':<12} {'size KB':>9} {'1 thread':>15} {f'{threads_all} threads':>15}")
    for run in args.runs:
        name = os.path.basename(os.path.normpath(run))
        files = sorted(glob.glob(os.path.join(run, "export", "*.tflite")))
        if not files:
            print(f"error: no .tflite in {run}/export; run freeze/export.py --run {run} first", file=sys.stderr)
            return 2
        size = TFLiteModel(files[0]).input_size
        image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        network = keras.saving.load_model(os.path.join(run, "best.keras"), compile=False)
        batch = image.astype(np.float32)
        k_med, k_p90 = timed(functools.partial(network.predict_on_batch, batch), args.warmup, args.repeats)
        keras_kb = os.path.getsize(os.path.join(run, "best.keras")) / 1024
        print(f"{name:<10} {'keras':<12} {keras_kb:>9.0f} {'':>15} {f'{k_med:.2f} / {k_p90:.2f}':>15}")
        for path in files:
            cells = []
            for threads in (1, threads_all):
                med, p90 = tflite_latency_ms(path, threads, args.warmup, args.repeats)
                cells.append(f"{med:.3f} / {p90:.3f}")
            fmt = os.path.splitext(os.path.basename(path))[0].split("_")[-1]
            size_kb = os.path.getsize(path) / 1024
            print(f"{name:<10} {'tflite ' + fmt:<12} {size_kb:>9.0f} {cells[0]:>15} {cells[1]:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
