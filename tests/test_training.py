"""Config handling, schedules, and short end-to-end runs of training/train.py and training/evaluate.py."""
import json
import os

import keras
import numpy as np
import pytest
import yaml

from facekit.config import LossConfig, ScheduleConfig, load_config
from facekit.records.schema import load_manifest
from facekit.training import learning_rate
from tests.conftest import SMALL_SENET
from training import evaluate, train


def write_yaml(path, values):
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_config_overrides_and_unknown_keys(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"model": "senet", "train": {"epochs": 3}})
    config = load_config(path, ["train.epochs=7", "augment.scale=[0.8, 1.2]", "loss.name=wing"])
    assert config.train.epochs == 7 and config.augment.scale == (0.8, 1.2) and config.loss == LossConfig(name="wing")
    with pytest.raises(ValueError, match=r"c.yaml: train: unknown key\(s\) \['epoch'\]"):
        load_config(path, ["train.epoch=7"])
    with pytest.raises(ValueError, match="expected key=value"):
        load_config(path, ["train.epochs"])


def test_schedules():
    exp = learning_rate(ScheduleConfig(name="exponential", lr=1e-3, decay_rate=0.98, decay_steps=1000), 10_000)
    assert float(exp(999)) == pytest.approx(1e-3) and float(exp(1000)) == pytest.approx(0.98e-3)
    cos = learning_rate(ScheduleConfig(name="cosine", lr=1e-3, warmup_steps=100), 1100)
    assert float(cos(50)) == pytest.approx(0.5e-3, rel=1e-3) and float(cos(100)) == pytest.approx(1e-3)
    assert float(cos(1100)) == pytest.approx(0.0, abs=1e-9)
    piece = learning_rate(ScheduleConfig(name="piecewise", boundaries=(10,), values=(1e-3, 1e-4)), 100)
    assert float(piece(5)) == pytest.approx(1e-3) and float(piece(11)) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="one more value"):
        learning_rate(ScheduleConfig(name="piecewise", boundaries=(10,), values=(1e-3,)), 100)


def test_short_run_halves_validation_nme(trained_run):
    metrics = json.load(open(os.path.join(trained_run, "metrics.json")))
    nme = metrics["history"]["val_nme"]
    assert metrics["best_val_nme"] <= 0.5 * nme[0], nme
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]
    for name in ("config.yaml", "codec.json", "best.keras", "log.csv"):
        assert os.path.exists(os.path.join(trained_run, name)), name
    saved = yaml.safe_load(open(os.path.join(trained_run, "config.yaml")))
    assert saved["model_args"]["widths"] == [16, 32, 64, 128] and saved["train"]["epochs"] == 60


def test_rerun_with_another_config_is_refused(trained_run, synthetic_splits, capsys):
    rc = train.main(["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                     "--out", trained_run, "--epochs", "61", "--set", *SMALL_SENET])
    assert rc == 2 and "another config" in capsys.readouterr().err


def test_evaluate_writes_json_plot_and_grid(trained_run, synthetic_splits, tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = evaluate.main(["--run", trained_run, "--data", synthetic_splits[1], "--json", str(out),
                        "--plot", str(tmp_path / "ced.png"), "--grid", str(tmp_path / "grid.jpg"), "--worst"])
    assert rc == 0
    result = json.load(open(out))
    best = json.load(open(os.path.join(trained_run, "best.json")))
    count = load_manifest(synthetic_splits[1])["num_records"]           # 48 faces + 12 mirrored copies
    assert result["count"] == count == 60 and result["nme"] == pytest.approx(best["val_nme"], rel=1e-4)
    assert 0 <= result["fr_0.10"] <= result["fr_0.08"] <= 1 and 0 <= result["auc_0.08"] <= result["auc_0.10"] <= 1
    assert sum(v["count"] for v in result["by_yaw"].values() if v) == count
    assert (tmp_path / "ced.png").stat().st_size > 1000 and (tmp_path / "grid.jpg").stat().st_size > 1000
    assert "yaw 0-30" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(capsys):
    assert train.main(["--model", "resnet999"]) == 2
    assert "unknown model 'resnet999'" in capsys.readouterr().err


def test_interrupted_run_resumes_after_the_last_finished_epoch(synthetic_splits, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    argv = ["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1], "--out", run,
            "--epochs", "3", "--set", *SMALL_SENET]
    original = keras.callbacks.CSVLogger.on_epoch_end

    def crash_in_second_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv)
    assert os.path.isdir(os.path.join(run, "backup"))
    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", original)
    assert train.main(argv) == 0
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert len(metrics["history"]["loss"]) == 1             # only the third epoch ran again
    assert metrics["epochs_run"] == 3                       # epochs and seconds count both sessions
    assert metrics["train_seconds"] >= json.load(open(os.path.join(run, "elapsed.json")))["seconds"] - 0.1
    assert [line.split(",")[0] for line in open(os.path.join(run, "log.csv")).read().split()[1:]] == ["0", "1", "2"]


def test_same_seed_repeats_the_run(synthetic_splits, tmp_path):
    logs = []
    for name in ("a", "b"):
        run = str(tmp_path / name)
        assert train.main(["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                           "--out", run, "--epochs", "2", "--set", *SMALL_SENET]) == 0
        logs.append(json.load(open(os.path.join(run, "metrics.json")))["history"])
    assert logs[0] == logs[1]


def test_time_budget_estimates_the_next_epoch_without_the_first(tmp_path, monkeypatch):
    """The first epoch of a session (tracing, cache) is left out of the estimate once later epochs exist."""
    from facekit import training

    clock = iter([0.0, 0.0, 105.0, 105.0, 151.0, 151.0, 197.0])
    monkeypatch.setattr(training.time, "monotonic", lambda: next(clock))
    budget = training.TimeBudget(4.0, str(tmp_path))
    budget.set_model(keras.Sequential())
    budget.model.stop_training = False
    stops = []
    for epoch in range(3):
        budget.on_epoch_begin(epoch)
        budget.on_epoch_end(epoch)
        stops.append(budget.model.stop_training)
    # after epoch 1: 151 s + 46 s fits in 240 s (the old estimate, 105 s, stopped there); after epoch 2 it does not
    assert budget.durations == [105.0, 46.0, 46.0] and stops == [False, False, True]
    assert json.load(open(tmp_path / "elapsed.json")) == {"seconds": 197.0, "epochs": 3}


def test_pfld_trains_with_its_pose_weighted_balanced_loss(synthetic_splits, tmp_path):
    """The pfld loss path end to end (pose and balance targets from the pipeline); the configs use L1."""
    run = str(tmp_path / "pfld")
    assert train.main(["--model", "pfld_025", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                       "--out", run, "--epochs", "3", "--set", "loss.name=pfld", "model_args.pose_subnet=true",
                       "model_args.input_size=64",
                       "loss.scale=64", "data.batch_size=16", "schedule.warmup_steps=0", "schedule.lr=0.003"]) == 0
    loss = json.load(open(os.path.join(run, "metrics.json")))["history"]["loss"]
    assert len(loss) == 3 and np.all(np.isfinite(loss)) and loss[-1] < loss[0]


def test_yaw_bins_draw_samples_in_the_asked_proportions(synthetic_splits):
    """data.yaw_bins / yaw_weights: 3 of 4 draws from the large-yaw bin, where the data holds 3 in 10 there."""
    import dataclasses

    from facekit.alignment.data import augmented_crops, read_annotations, yaw_bin_counts
    from facekit.config import AugmentConfig, DataConfig

    yaw = np.abs(np.degrees(read_annotations([synthetic_splits[0]])["pose_rad"][:, 1]))
    edge = float(np.percentile(yaw, 70))
    assert yaw_bin_counts(np.radians(yaw), [edge]).tolist() == [np.sum(yaw < edge), np.sum(yaw >= edge)]
    still = AugmentConfig(flip=False, rotation_deg=0, scale=(1, 1), translate=0, color_jitter=False, grey=0,
                          blur=0, occlusion=0)

    def large_fraction(data):
        draws = augmented_crops([synthetic_splits[0]], 32, data, still, seed=3).take(800)
        return np.mean([abs(np.degrees(s["pose_rad_source"][1])) >= edge for s in draws.as_numpy_iterator()])

    assert large_fraction(DataConfig()) == pytest.approx(0.3, abs=0.06)
    assert large_fraction(DataConfig(yaw_bins=(edge,), yaw_weights=(1, 3))) == pytest.approx(0.75, abs=0.05)
    assert large_fraction(DataConfig(yaw_bins=(edge, 1000.0), yaw_weights=(0, 1, 5))) == 1.0  # empty bin left out
    for bad in ((1, 2, 3), (1, -1)):
        with pytest.raises(ValueError, match="yaw_weights"):
            augmented_crops([synthetic_splits[0]], 32, dataclasses.replace(DataConfig(), yaw_bins=(edge,),
                                                                          yaw_weights=bad), still, seed=0)


def test_landmark_steps_per_epoch_follow_the_config(synthetic_splits, tmp_path):
    """train.steps_per_epoch sets a landmark run's epoch length (it was ignored: one pass over the records)."""
    import models  # noqa: F401
    from facekit.alignment.data import count_records
    from facekit.alignment.training import training_setup
    from facekit.registry import get_spec

    path = write_yaml(tmp_path / "c.yaml", {"model": "senet"})
    steps = [training_setup(get_spec("senet"), load_config(path, [*SMALL_SENET, *extra]), [synthetic_splits[0]]).steps
             for extra in ([], ["train.steps_per_epoch=3"])]
    assert steps == [count_records([synthetic_splits[0]]) // 16, 3]


def test_a_run_saved_before_a_config_key_existed_is_still_the_same_config(tmp_path):
    """A key added to the config later (with its default) does not make an old run 'another config'."""
    from facekit.training import prepare_run

    config = load_config(write_yaml(tmp_path / "c.yaml", {"model": "senet"}))
    run = tmp_path / "run"
    run.mkdir()
    saved = config.to_dict()
    del saved["data"]["yaw_bins"]  # as written before data.yaw_bins existed
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    prepare_run(config, str(run))
    with pytest.raises(ValueError, match="another config"):
        prepare_run(load_config(str(tmp_path / "c.yaml"), ["train.epochs=9"]), str(run))


def test_init_weights_starts_a_run_from_another_runs_best_weights(trained_run, synthetic_splits, tmp_path, capsys):
    """train.init_weights carries a finished run's weights into a new run: at learning rate 0 its first epoch
    validates near the finished run's best NME (not at the fresh start's twice that or more; only batch-norm
    statistics move); a missing file or another architecture is a clear error naming the file."""
    history = json.load(open(os.path.join(trained_run, "metrics.json")))["history"]["val_nme"]

    def run(name, *settings):
        return train.main(["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                           "--epochs", "1", "--out", str(tmp_path / name), "--set", *SMALL_SENET,
                           "schedule.name=constant", "schedule.lr=0.0", *settings])

    assert run("warm", f"train.init_weights={trained_run}") == 0
    warm = json.load(open(tmp_path / "warm" / "metrics.json"))["history"]["val_nme"][0]
    assert warm < 1.25 * min(history) and warm < 0.6 * history[0], (warm, min(history), history[0])
    missing = str(tmp_path / "nothing")
    assert run("missing", f"train.init_weights={missing}") == 2
    assert f"init_weights: {missing} does not exist" in capsys.readouterr().err
    assert run("other", f"train.init_weights={trained_run}", "model_args.widths=[8, 16, 32, 64]") == 2
    assert "best.keras does not fit" in capsys.readouterr().err


def test_training_curve_lays_a_warm_restarted_run_after_the_run_it_continues(tmp_path, capsys):
    """benchmarks/training_curve.py follows train.init_weights back and puts a continuation's epochs after its
    predecessor's, in minutes from elapsed.json; mixed metrics and a folder without a log are clear errors."""
    from benchmarks import training_curve

    def write_run(name, scores, seconds, init=None, metric="val_ap"):
        run = tmp_path / name
        run.mkdir()
        (run / "log.csv").write_text("epoch,loss," + metric + "\n" +
                                     "".join(f"{i},1.0,{s}\n" for i, s in enumerate(scores)))
        (run / "elapsed.json").write_text(json.dumps({"seconds": seconds, "epochs": len(scores)}))
        (run / "config.yaml").write_text(yaml.safe_dump({"train": {"steps_per_epoch": 10, "init_weights": init},
                                                         "data": {"batch_size": 4}}))
        return str(run)

    first = write_run("first", [0.1, 0.5, 0.4], 360)  # 2 min an epoch
    second = write_run("second", [0.45, 0.6], 60, init=first + "/best.keras")  # 0.5 min an epoch
    curves = training_curve.chain_curves(second)
    assert [c["run"] for c in curves] == [first, second]
    assert [c["start_minutes"] for c in curves] == [0.0, 6.0] and curves[1]["minutes_per_epoch"] == 0.5
    assert training_curve.best(curves[0]) == (0.5, 2) and curves[1]["images_per_epoch"] == 40
    out = tmp_path / "curve.png"
    assert training_curve.main([second, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"| {second} | {first} | 2 | 1.0 (6.0-7.0) | 80 | 0.4500 | 0.6000 (2) | 0.6000 |" in table
    assert os.path.getsize(out) > 10_000
    landmarks = write_run("landmarks", [0.2, 0.1], 60, metric="val_nme")
    assert training_curve.main([second, landmarks, "--out", str(out)]) == 2
    assert "val_ap and val_nme" in capsys.readouterr().err
    assert training_curve.main([str(tmp_path), "--out", str(out)]) == 2
    assert "not a training run folder" in capsys.readouterr().err
