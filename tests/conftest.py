import fcntl
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
requires_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent: the research-only face data is not part of the repo")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def synthetic_300wlp(tmp_path_factory):
    """A small synthetic 300W-LP tree: 24 faces + 6 mirrored copies."""
    from facekit.records.synthetic import write_synthetic_300wlp

    root = tmp_path_factory.mktemp("synthetic_300wlp")
    write_synthetic_300wlp(str(root), 24, seed=7)
    return root


# A small SE-ResNet at 64x64 with light augmentation: 60 epochs of 10 steps take about 80 s on 2 cores.
SMALL_SENET = ["model_args.widths=[16, 32, 64, 128]", "model_args.blocks=[1, 1, 1, 1]", "model_args.input_size=64",
               "loss.scale=64", "data.batch_size=16", "schedule.lr=0.003", "schedule.warmup_steps=30",
               "augment.rotation_deg=10", "augment.occlusion=0", "augment.color_jitter=false", "augment.blur=0",
               "augment.grey=0"]


@pytest.fixture(scope="session")
def synthetic_splits(tmp_path_factory):
    """(train_dir, val_dir): 160 + 48 synthetic faces converted to records."""
    from facekit.alignment.data import synthetic_default

    return synthetic_default(str(tmp_path_factory.mktemp("synthetic")), train_count=160, val_count=48)


@pytest.fixture(scope="session")
def trained_run(synthetic_splits, tmp_path_factory):
    """A small SENet trained for 60 epochs on the synthetic splits, once for all pytest-xdist workers: the first
    worker to need it trains under a file lock, the others wait and read the finished run."""
    from training import train

    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp  # this session's, all workers
    run = str(shared / "trained_senet")
    with open(shared / "trained_senet.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(run, "metrics.json")):
            rc = train.main(["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                             "--out", run, "--epochs", "60", "--set", *SMALL_SENET])
            assert rc == 0
    return run


@pytest.fixture(scope="session")
def synthetic_scene_records(tmp_path_factory):
    """(train_dir, val_dir): detection records of 64 + 12 synthetic multi-face scenes."""
    from facekit.detection.convert import DetectionSettings
    from facekit.records.convert import convert_dataset
    from facekit.records.synthetic import write_synthetic_scenes

    root = tmp_path_factory.mktemp("scenes")
    dirs = []
    for split, count, seed in (("train", 64, 0), ("val", 12, 1)):
        write_synthetic_scenes(str(root / f"{split}_raw"), count, seed=seed)
        out = str(root / split)
        convert_dataset(str(root / f"{split}_raw" / "images"), out, DetectionSettings(
            "retinaface", annotations=str(root / f"{split}_raw" / "label.txt")), progress=False)
        dirs.append(out)
    return dirs
