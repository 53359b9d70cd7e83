"""Training throughput of each landmark model against its own bounds, in images per second:

    python benchmarks/train_throughput.py [--models senet pfld pfld_025 pipnet] [--data RECORDS ...]
        [--batches 20] [--repeats 3] [--set KEY=VALUE ...]

(a) train.py's data and step in one Keras fit: records -> tf.data -> augmentation -> codec targets -> train step;
    without train.py's epoch-end callbacks (validation NME, checkpoints, TensorBoard, CSV log), which cost time
    once per epoch, not per step;
(b) the train step alone on one batch held in memory: the compute bound of the network on this CPU;
(c) the input pipeline alone, drained without a model: the input bound.
Reported with a / min(b, c) (how close the loop gets to its bound; goal >= 0.9) and c / b (goal >= 3: the
pipeline never starves the network). Every model uses its training config (training/configs) and the same
setup as train.py (facekit.alignment.training.training_setup); --data defaults to the synthetic records. Each figure is
the median of --repeats timings of --batches batches, after warm-up batches (for (a): within one fit, see
loop_rate).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANDMARK_MODELS = ("senet", "pfld", "pfld_025", "pipnet")
WARMUP_BATCHES = 3


def median_rate(run, images: int, repeats: int) -> float:
    """Images per second: `images` divided by the median time of run()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return images / float(np.median(times))


def measure(name: str, data_dirs: list[str], batches: int, repeats: int, overrides: list[str]) -> dict:
    import keras

    import models  # noqa: F401  (fills the registry)
    from facekit.alignment.training import training_setup
    from facekit.config import load_config
    from facekit.registry import get_spec

    spec = get_spec(name)
    config = load_config(os.path.join(ROOT, "training", "configs", spec.config), overrides, model=name)
    keras.utils.set_random_seed(config.train.seed)
    setup = training_setup(spec, config, data_dirs)
    batch = config.data.batch_size
    iterator = iter(setup.train_ds)
    x, y = next(iterator)
    next(iterator)

    def drain():
        for _ in range(batches):
            next(iterator)

    def step_in_memory():
        for _ in range(batches):
            setup.trainer.train_on_batch(x, y)

    setup.trainer.train_on_batch(x, y)
    return {"batch": batch, "input": setup.input_size, "loop": loop_rate(setup, batch, batches, repeats),
            "compute": median_rate(step_in_memory, batches * batch, repeats),
            "pipeline": median_rate(drain, batches * batch, repeats)}


def loop_rate(setup, batch_size: int, batches: int, repeats: int, warmup: int = WARMUP_BATCHES) -> float:
    """(a): one Keras fit over warmup + repeats x batches steps, as train.py runs it (one iterator for the whole
    run, so the shuffle buffer fills once); the median over the repeats of images per second between the
    clock's batch ends. Timing separate short fits instead would charge each one a refill of the buffer."""
    import keras

    class BatchClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    clock = BatchClock()
    setup.trainer.fit(setup.train_ds, epochs=1, steps_per_epoch=warmup + repeats * batches, verbose=0,
                      callbacks=[clock])
    ends = clock.ends[warmup - 1:]
    images = batches * batch_size
    return float(np.median([images / (ends[(k + 1) * batches] - ends[k * batches]) for k in range(repeats)]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(LANDMARK_MODELS))
    p.add_argument("--data", nargs="+", help="landmark record folder(s) (default: the synthetic records)")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every model")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from facekit.alignment.data import synthetic_default

    data_dirs = args.data or [synthetic_default()[0]]
    rows = {name: measure(name, data_dirs, args.batches, args.repeats, args.set) for name in args.models}
    print(f"\ntraining images/s on {os.cpu_count()} cores, {args.batches} batches, median of {args.repeats}; "
          f"data {', '.join(data_dirs)}")
    print(f"{'model':<10}{'input':>6}{'batch':>6}{'(a) loop':>10}{'(b) step':>10}{'(c) input':>11}"
          f"{'a/min(b,c)':>12}{'c/b':>7}")
    for name, r in rows.items():
        print(f"{name:<10}{r['input']:>6}{r['batch']:>6}{r['loop']:>10.1f}{r['compute']:>10.1f}{r['pipeline']:>11.1f}"
              f"{r['loop'] / min(r['compute'], r['pipeline']):>12.2f}{r['pipeline'] / r['compute']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
