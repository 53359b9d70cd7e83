"""Train any registered model: landmark models, DBFace (detection records) and the MTCNN stages (MTCNN samples).

    python training/train.py --model senet                      # built-in synthetic data, no download
    python training/train.py --model pfld --data A B --val-data C --out runs/pfld --set train.epochs=80
    python training/train.py --model dbface_small --data records/det_train --val-data records/det_val
    python training/train.py --model mtcnn_pnet --data records/mtcnn_pnet --val-data records/mtcnn_pnet_val
    python training/train.py --model pipnet --data A --val-data B --strategy mirrored --mixed-precision  # GPUs
    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \
        python training/train.py --model pfld --data A --val-data B --out /shared/runs/pfld --strategy multi_worker

data.batch_size is the global batch, split over the replicas. A multi-worker run's --out must be a folder every
worker sees: the chief writes it, and every worker resumes from its backup/.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
SYNTHETIC_EPOCHS = 12  # the built-in demo: 12 epochs of 37 steps on 1,200 drawn faces, a few minutes on 2 cores
# A config's warm-up (SENet: 300 steps) and its augmentation for real photos (occlusion, colour, blur, +-30 deg)
# would take most of the demo; with these the main job's validation NME falls from the first epochs (SENet,
# measured: 39.9, 38.7, 37.1, 26.7, 15.8 ... 9.2% at best, epoch 11).
SYNTHETIC_SETTINGS = ["schedule.warmup_steps=20", "augment.rotation_deg=10", "augment.occlusion=0",
                      "augment.color_jitter=false", "augment.blur=0", "augment.grey=0"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered model: senet, senet_small, pfld, pfld_025, pipnet, "
                   "dbface, dbface_small, dbface_nano, mtcnn_pnet, mtcnn_rnet, mtcnn_onet")
    p.add_argument("--data", nargs="+", help="converted training record folder(s) (default: synthetic)")
    p.add_argument("--val-data", nargs="+", help="validation record folder(s) (default: synthetic)")
    p.add_argument("--out", help="run directory (default: runs/MODEL); rerunning resumes it")
    p.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=N")
    p.add_argument("--config", help="YAML config (default: training/configs/<model's config>)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
                   help="default: one device; mirrored: all local GPUs; multi_worker: the machines in TF_CONFIG")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on a GPU (refused on a CPU)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys, e.g. "
                   "data.batch_size=64 augment.rotation_deg=20")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import models  # noqa: F401  (fills the registry)
    from facekit import distribute
    from facekit.alignment.data import synthetic_default
    from facekit.config import load_config
    from facekit.records.verify import naming_damaged_shards, require_intact
    from facekit.registry import get_spec

    try:
        strategy = distribute.make_strategy(args.strategy)  # first: multi-worker collectives need it before any op
        if args.mixed_precision:
            distribute.use_mixed_precision()
        spec = get_spec(args.model)
        synthetic = args.data is None or args.val_data is None
        demo = [f"train.epochs={SYNTHETIC_EPOCHS}", *SYNTHETIC_SETTINGS] if synthetic else []
        # the command line's own settings come after the demo's and win
        overrides = demo + list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else [])
        config = load_config(args.config or os.path.join(CONFIG_DIR, spec.config), overrides, model=spec.name)
        if config.model != spec.name:
            raise ValueError(f"config is for model {config.model!r}, not {spec.name!r}")
        if spec.codec == "mtcnn" and synthetic:
            raise ValueError(f"{spec.name} trains on MTCNN samples: pass --data and --val-data folders from "
                             f"python -m tfrecords_tools.mtcnn_samples --stage {spec.name[6:]}")
        if args.strategy == "multi_worker" and synthetic:
            raise ValueError("--strategy multi_worker needs --data and --val-data folders that every worker reads")
        if synthetic:
            train_dir, val_dir = synthetic_default()
            args.data, args.val_data = args.data or [train_dir], args.val_data or [val_dir]
            print(f"no --data: training on the synthetic default ({train_dir}) for {config.train.epochs} epochs")
        for folder in args.data + args.val_data:
            require_intact(folder)  # before any work: a damaged shard would otherwise fail mid-epoch
        run_dir = args.out or os.path.join("runs", spec.name)
        distribute.check_global_batch(config.data.batch_size, strategy.num_replicas_in_sync)
        if args.strategy != "default":
            print(f"{args.strategy}: {strategy.num_replicas_in_sync} replicas share the global batch of "
                  f"{config.data.batch_size}; this process's devices: {', '.join(strategy.extended.worker_devices)}")
        worker_dir = None if distribute.is_chief(strategy) else distribute.worker_run_dir(run_dir)
        try:
            with naming_damaged_shards(args.data + args.val_data), strategy.scope():
                return train_and_report(spec, config, args.data, args.val_data, worker_dir or run_dir)
        finally:
            if worker_dir:
                shutil.rmtree(worker_dir, ignore_errors=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def train_and_report(spec, config, train_dirs, val_dirs, run_dir) -> int:
    """Train by the model's codec (detector, MTCNN stage or landmark model) and print the outcome."""
    if spec.codec == "centernet":
        from facekit.detection.dbface.training import train_detector
        metrics = train_detector(spec, config, train_dirs, val_dirs, run_dir)
        print(f"best validation AP {metrics['best_val_ap']:.4f} at epoch {metrics['best_epoch']}; "
              f"{metrics['train_seconds']:.0f} s; model in {run_dir}/best.keras")
    elif spec.codec == "mtcnn":
        from facekit.detection.mtcnn.training import train_mtcnn_stage
        metrics = train_mtcnn_stage(spec, config, train_dirs, val_dirs, run_dir)
        print(f"best validation loss {metrics['best_val_loss']:.4f} at epoch {metrics['best_epoch']} (face "
              f"accuracy {metrics['best'].get('val_face_accuracy', float('nan')):.4f}); "
              f"{metrics['train_seconds']:.0f} s; model in {run_dir}/best.keras")
    else:
        from facekit.alignment.training import train
        metrics = train(spec, config, train_dirs, val_dirs, run_dir)
        print(f"best validation NME {100 * metrics['best_val_nme']:.2f}% ({metrics['normalize']}) at epoch "
              f"{metrics['best_epoch']}; {metrics['train_seconds']:.0f} s; model in {run_dir}/best.keras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
