"""Conversion on Apache Beam (DirectRunner) writes the records, manifest and preview of the local converter.

Beam is an optional extra with its own environment (requirements-beam.txt); .ci/run installs it and runs this
file there. In the default environment only the clear error for a missing Beam is tested."""
import importlib.util
import os

import pytest

from facekit.records.convert import ConvertSettings, convert_dataset

HAS_BEAM = importlib.util.find_spec("apache_beam") is not None
needs_beam = pytest.mark.skipif(not HAS_BEAM, reason="Apache Beam is not installed: it is an optional extra "
                                "(pip install -r requirements-beam.txt); .ci/run tests it in a second environment")


def records_of(folder) -> list[bytes]:
    import tensorflow as tf

    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".tfrecord"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files)]


@needs_beam
@pytest.mark.parametrize("task", ["landmarks", "detection"])
def test_beam_writes_what_the_local_converter_writes(task, synthetic_300wlp, tmp_path):
    if task == "landmarks":
        raw, settings = str(synthetic_300wlp), ConvertSettings(format="300wlp", image_size=64, shard_size=8)
    else:
        from facekit.detection.convert import DetectionSettings
        from facekit.records.synthetic import write_synthetic_scenes

        write_synthetic_scenes(str(tmp_path / "scenes"), 12, seed=3)
        raw = str(tmp_path / "scenes" / "images")
        settings = DetectionSettings("retinaface", annotations=str(tmp_path / "scenes" / "label.txt"), shard_size=5)
    local = convert_dataset(raw, str(tmp_path / "local"), settings, workers=2, progress=False)
    on_beam = convert_dataset(raw, str(tmp_path / "beam"), settings, progress=False, runner="beam",
                              beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"])
    assert len(local["shards"]) > 1
    assert on_beam == local                                    # counts, skips with reasons, shard digests
    assert sorted(records_of(tmp_path / "beam")) == sorted(records_of(tmp_path / "local"))
    assert (tmp_path / "beam" / "preview.jpg").read_bytes() == (tmp_path / "local" / "preview.jpg").read_bytes()
    assert sorted(os.listdir(tmp_path / "beam")) == sorted(os.listdir(tmp_path / "local"))


@needs_beam
def test_beam_resumes_an_interrupted_local_conversion(synthetic_300wlp, tmp_path, monkeypatch):
    from facekit.records import shards as shards_module

    settings = ConvertSettings(format="300wlp", image_size=64, shard_size=8)
    real_write = shards_module.write_shard

    def write_then_die(output_dir, file_name, *args, **kwargs):
        if "00002-of-" in file_name:
            raise KeyboardInterrupt("simulated interruption")
        return real_write(output_dir, file_name, *args, **kwargs)

    monkeypatch.setattr(shards_module, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(str(synthetic_300wlp), str(tmp_path / "out"), settings, progress=False)
    monkeypatch.setattr(shards_module, "write_shard", real_write)
    resumed = convert_dataset(str(synthetic_300wlp), str(tmp_path / "out"), settings, progress=False, runner="beam")
    fresh = convert_dataset(str(synthetic_300wlp), str(tmp_path / "fresh"), settings, progress=False)
    assert resumed == fresh


@pytest.mark.skipif(HAS_BEAM, reason="Apache Beam is installed here: the missing-Beam error cannot happen")
def test_runner_beam_without_beam_is_a_clear_error_and_writes_nothing(synthetic_300wlp, tmp_path):
    with pytest.raises(ValueError, match=r"--runner beam needs Apache Beam .*pip install -r requirements-beam.txt"):
        convert_dataset(str(synthetic_300wlp), str(tmp_path / "out"), ConvertSettings(format="300wlp"),
                        runner="beam")
    assert not (tmp_path / "out").exists()
