"""Damaged record folders: verification, named errors before and during work, and --repair."""
import glob
import json
import os
import shutil

import pytest

from facekit import files
from facekit.records.verify import DamagedRecordsError, masked_crc32c, shard_digest
from tests.conftest import SMALL_SENET
from tfrecords_tools import convert, verify

SHARD = "300wlp-00001-of-00003.tfrecord"


@pytest.fixture(scope="module")
def converted(synthetic_300wlp, tmp_path_factory):
    """(convert arguments, folder): the 30 synthetic faces in 3 shards of 10."""
    out = str(tmp_path_factory.mktemp("records") / "clean")
    args = ["--input", str(synthetic_300wlp), "--image-size", "64", "--shard-size", "10", "--workers", "1"]
    assert convert.main(args + ["--output", out]) == 0
    return args, out


@pytest.fixture
def damaged(converted, tmp_path):
    """A copy of the clean folder to break, and a function to run the converter on it."""
    args, clean = converted
    folder = str(tmp_path / "copy")
    shutil.copytree(clean, folder)
    return folder, lambda *extra: convert.main(args + ["--output", folder, *extra])


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def flip_byte(path, offset=200):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


def test_masked_crc32c_matches_a_known_value():
    # CRC-32C of "123456789" is 0xE3069283 (the standard check value); masked as TFRecord does
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_manifest_records_size_count_and_checksum_of_every_shard(converted, capsys):
    _, folder = converted
    manifest = files.read_json(os.path.join(folder, "manifest.json"))
    assert len(manifest["shards"]) == 3
    for entry in manifest["shards"]:
        assert shard_digest(os.path.join(folder, entry["file"])) == {"bytes": entry["bytes"],
                                                                     "sha256": entry["sha256"]}
    assert verify.main([folder]) == 0
    assert verify.main([folder, "--deep"]) == 0
    assert "3 shard(s), 30 records ok" in capsys.readouterr().out


@pytest.mark.parametrize("damage, fast, deep", [
    (truncate, "truncated record at offset", "truncated record at offset"),
    (os.remove, "missing", "missing"),
    (flip_byte, None, "checksum mismatch: SHA-256 differs from the manifest; corrupted record at offset"),
])
def test_verify_names_the_shard_and_repair_restores_identical_bytes(damaged, converted, damage, fast, deep,
                                                                    capsys):
    folder, run_convert = damaged
    original = open(os.path.join(converted[1], SHARD), "rb").read()
    damage(os.path.join(folder, SHARD))
    capsys.readouterr()
    assert verify.main([folder]) == (1 if fast else 0)
    if fast:
        assert f"{SHARD}: {fast}" in capsys.readouterr().err
    assert verify.main([folder, "--deep"]) == 1
    err = capsys.readouterr().err
    assert f"{SHARD}: {deep}" in err and "1 of 3 shard(s) damaged" in err and "--repair" in err

    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(folder, "*of-00003.tfrecord"))
              if not p.endswith(SHARD)}
    assert run_convert("--repair") == 0
    assert "rewrote 1 shard(s)" in capsys.readouterr().out
    assert open(os.path.join(folder, SHARD), "rb").read() == original
    assert {p: os.path.getmtime(p) for p in before} == before  # the intact shards were not touched
    assert sorted(os.listdir(folder)) == sorted(os.listdir(converted[1]))  # nothing half-written left
    assert verify.main([folder, "--deep"]) == 0
    assert run_convert("--repair") == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_repair_refuses_other_settings_and_leaves_the_folder(damaged, capsys):
    folder, run_convert = damaged
    truncate(os.path.join(folder, SHARD))
    assert run_convert("--repair", "--margin", "0.3") == 1
    assert "other input or settings" in capsys.readouterr().err
    assert verify.main([folder]) == 1


def test_training_on_a_damaged_folder_stops_before_any_work(synthetic_splits, tmp_path, capsys):
    from training import train

    folder = str(tmp_path / "train")
    shutil.copytree(synthetic_splits[0], folder)
    shard = files.read_json(os.path.join(folder, "manifest.json"))["shards"][0]["file"]
    truncate(os.path.join(folder, shard))
    run = str(tmp_path / "run")
    assert train.main(["--model", "senet", "--data", folder, "--val-data", synthetic_splits[1], "--out", run]) == 2
    err = capsys.readouterr().err
    assert folder in err and f"{shard}: truncated record at offset" in err and "--repair" in err
    assert "Traceback" not in err and not os.path.exists(run)


def test_a_read_error_mid_run_names_the_shard(synthetic_splits, tmp_path, capsys):
    """A byte flipped inside a record passes the fast check (size, count, headers) and fails while reading."""
    from facekit.alignment.data import evaluation_arrays

    folder = str(tmp_path / "val")
    shutil.copytree(synthetic_splits[1], folder)
    shard = files.read_json(os.path.join(folder, "manifest.json"))["shards"][0]["file"]
    flip_byte(os.path.join(folder, shard), offset=500)
    assert verify.main([folder]) == 0
    with pytest.raises(DamagedRecordsError, match=f"{shard}: checksum mismatch.*corrupted record at offset"):
        evaluation_arrays([folder], 64)


def test_old_manifest_without_checksums_still_loads_with_a_note(damaged, capsys):
    from facekit.records import schema

    folder, _ = damaged
    path = os.path.join(folder, "manifest.json")
    manifest = files.read_json(path)
    manifest["shards"] = [{"file": s["file"], "num_records": s["num_records"]} for s in manifest["shards"]]
    files.write_json(path, manifest)
    assert len(schema.record_files(folder)) == 3
    assert "predates shard sizes and checksums" in capsys.readouterr().err
    assert verify.main([folder]) == 0
    assert "counts and headers only" in capsys.readouterr().out
    os.remove(os.path.join(folder, SHARD))
    assert verify.main([folder]) == 1


def break_json(path):
    with open(path, "w") as f:
        f.write('{"schema\x01_version": 1')


def test_broken_manifest_is_named(damaged, trained_run, capsys):
    from training import evaluate

    folder, run_convert = damaged
    path = os.path.join(folder, "manifest.json")
    break_json(path)
    assert verify.main([folder]) == 1
    assert f"{path}: not valid JSON" in capsys.readouterr().err
    assert evaluate.main(["--run", trained_run, "--data", folder]) == 2
    assert f"{path}: not valid JSON" in capsys.readouterr().err
    assert run_convert() == 1  # a plain conversion into the folder names it too
    assert f"{path}: not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["codec.json", "config.yaml", "best.json"])
def test_broken_run_files_are_named(trained_run, synthetic_splits, tmp_path, name, capsys):
    from training import evaluate, train

    run = str(tmp_path / "run")
    shutil.copytree(trained_run, run)
    os.remove(os.path.join(run, "metrics.json"))  # unfinished: train.py resumes it and reads every file
    with open(os.path.join(run, name), "w") as f:
        f.write("model: [senet\n" if name.endswith(".yaml") else "{\"val_nme\": ")
    kind = "YAML" if name.endswith(".yaml") else "JSON"
    if name != "best.json":
        assert evaluate.main(["--run", run, "--data", synthetic_splits[1]]) == 2
        assert f"{os.path.join(run, name)}: not valid {kind}" in capsys.readouterr().err
    assert train.main(["--model", "senet", "--data", synthetic_splits[0], "--val-data", synthetic_splits[1],
                       "--out", run, "--epochs", "60", "--set", *SMALL_SENET]) == 2
    assert f"{os.path.join(run, name)}: not valid {kind}" in capsys.readouterr().err


def test_json_and_yaml_readers_name_the_file(tmp_path):
    path = str(tmp_path / "x.json")
    break_json(path)
    with pytest.raises(ValueError, match="x.json: not valid JSON"):
        files.read_json(path)
    with pytest.raises(ValueError, match="missing.json: file not found"):
        files.read_json(str(tmp_path / "missing.json"))
    files.write_json(path, {"a": [1, 2]})
    assert files.read_json(path) == {"a": [1, 2]} and os.listdir(tmp_path) == ["x.json"]
    yaml_path = str(tmp_path / "c.yaml")
    with open(yaml_path, "w") as f:
        f.write("a: [1\n")
    with pytest.raises(ValueError, match="c.yaml: not valid YAML"):
        files.read_yaml(yaml_path)
    assert json.loads(open(path).read()) == {"a": [1, 2]}
