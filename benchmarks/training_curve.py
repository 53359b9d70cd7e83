"""Validation score against training minutes, across runs chained by train.init_weights (warm restarts).

    python benchmarks/training_curve.py RUN [RUN ...] [--out runs/training_curve.png]

Each RUN is followed back through its config's train.init_weights to the run it started from; a chain's epochs
are laid end to end, so a continued run's curve starts where its predecessor's stopped. The minutes are each
run's elapsed.json (all its sessions) spread evenly over its epochs, so they are only as comparable as the
machines were idle. Prints one row per run (epochs, minutes, images seen, first / best / last validation score:
val_ap for detectors, val_nme for landmark models) and draws the curves: what more training buys.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

METRICS = ("val_ap", "val_nme")  # the validation score a run's log holds: higher AP, lower NME is better


def require_run(run: str) -> None:
    for name in ("log.csv", "elapsed.json", "config.yaml"):
        if not os.path.isfile(os.path.join(run, name)):
            raise ValueError(f"{run}: no {name}; not a training run folder")


def run_chain(run: str) -> list[str]:
    """The runs a run continues, oldest first, ending with the run itself."""
    from facekit.files import read_yaml

    chain = [os.path.normpath(run)]
    while True:
        require_run(chain[0])
        start = read_yaml(os.path.join(chain[0], "config.yaml"))["train"].get("init_weights")
        if not start:
            return chain
        start = os.path.normpath(os.path.dirname(start) if start.endswith(".keras") else start)
        if start in chain:
            raise ValueError(f"{run}: train.init_weights runs in a circle through {start}")
        chain.insert(0, start)


def run_curve(run: str) -> dict:
    """One run's validation scores by epoch: {metric, scores, minutes_per_epoch, images_per_epoch}."""
    from facekit.files import read_json, read_yaml

    require_run(run)
    with open(os.path.join(run, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    metric = next((m for m in METRICS if rows and m in rows[0]), None)
    if metric is None:
        raise ValueError(f"{run}/log.csv: no {' or '.join(METRICS)} column")
    elapsed, config = read_json(os.path.join(run, "elapsed.json")), read_yaml(os.path.join(run, "config.yaml"))
    steps = config["train"].get("steps_per_epoch")
    return {"metric": metric, "scores": [float(r[metric]) for r in rows],
            "minutes_per_epoch": elapsed["seconds"] / 60 / max(1, elapsed["epochs"]),
            "images_per_epoch": steps * config["data"]["batch_size"] if steps else None}


def chain_curves(run: str) -> list[dict]:
    """The chain's curves with each run's start in minutes after the chain's first epoch."""
    curves, start = [], 0.0
    for member in run_chain(run):
        curve = {"run": member, **run_curve(member), "start_minutes": start}
        start += curve["minutes_per_epoch"] * len(curve["scores"])
        curves.append(curve)
    return curves


def best(curve: dict) -> tuple[float, int]:
    """(best score, its 1-based epoch)."""
    pick = max if curve["metric"] == "val_ap" else min
    score = pick(curve["scores"])
    return score, curve["scores"].index(score) + 1


def print_table(curves: list[dict]) -> None:
    print("| run | continues | epochs | minutes (from the chain's start) | images seen | first | best (epoch) | last |")
    print("|---|---|---|---|---|---|---|---|")
    for i, c in enumerate(curves):
        epochs, minutes = len(c["scores"]), c["minutes_per_epoch"] * len(c["scores"])
        images = f"{c['images_per_epoch'] * epochs:,}" if c["images_per_epoch"] else "one pass an epoch"
        score, epoch = best(c)
        print(f"| {c['run']} | {curves[i - 1]['run'] if i else ''} | {epochs} | {minutes:.1f} "
              f"({c['start_minutes']:.1f}-{c['start_minutes'] + minutes:.1f}) | {images} | {c['scores'][0]:.4f} | "
              f"{score:.4f} ({epoch}) | {c['scores'][-1]:.4f} |")


def draw(chains: list[list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for curves in chains:
        for c in curves:
            x = [c["start_minutes"] + c["minutes_per_epoch"] * (e + 1) for e in range(len(c["scores"]))]
            ax.plot(x, c["scores"], "-", label=os.path.basename(c["run"]))
            if c["start_minutes"]:
                ax.axvline(c["start_minutes"], color="grey", linestyle=":", alpha=0.6)
    ax.set_xlabel("training minutes (each run's elapsed time spread over its epochs; dotted: a warm restart)")
    ax.set_ylabel(chains[0][0]["metric"])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="training run folders (each followed back through train.init_weights)")
    p.add_argument("--out", default=os.path.join("runs", "training_curve.png"))
    args = p.parse_args(argv)
    try:
        chains = [chain_curves(run) for run in args.runs]
        metrics = {c["metric"] for curves in chains for c in curves}
        if len(metrics) > 1:
            raise ValueError(f"the runs are scored by {' and '.join(sorted(metrics))}: draw one kind at a time")
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for curves in chains:
        print_table(curves)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    draw(chains, args.out)
    print(f"curves drawn in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
