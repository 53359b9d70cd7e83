"""Contract tests for every registered landmark model, at the input size of its training config."""
import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import models  # noqa: F401
from facekit.alignment.training import LandmarkTrainer
from facekit.codecs import make_codec
from facekit.config import load_config
from facekit.registry import get_spec, names_for_task
from models.backbones import make_divisible

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "training", "configs")
PARAMS = {"senet": 1_045_600, "senet_small": 283_508, "pfld": 1_237_192, "pfld_025": 325_000, "pipnet": 3_205_628}
EXPECTED_OUTPUTS = {"senet": {"landmarks": (136,)}, "senet_small": {"landmarks": (136,)},
                    "pfld": {"landmarks": (136,)}, "pfld_025": {"landmarks": (136,)},
                    "pipnet": {"score": (8, 8, 68), "offset_x": (8, 8, 68), "offset_y": (8, 8, 68),
                               "neighbor_x": (8, 8, 680), "neighbor_y": (8, 8, 680)}}


def build(name, **model_args):
    """The model as its config builds it (model_args override the config's)."""
    spec = get_spec(name)
    config = load_config(os.path.join(CONFIGS, spec.config))
    points = np.random.default_rng(0).uniform(0.1, 0.9, (16, 68, 2)).astype(np.float32)
    codec = make_codec(spec.codec, 68, points, **config.codec_args)
    return spec, config, codec, spec.build(68, **codec.build_args, **{**config.model_args, **model_args})


def test_every_registered_model_is_covered():
    assert set(names_for_task("landmarks")) == set(PARAMS)


def test_every_config_file_loads_and_names_a_registered_model():
    """Recipes beside the models' own configs (senet_profiled.yaml) are checked like them: no unknown key."""
    files = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml"))
    assert "senet_profiled.yaml" in files
    for name in files:
        get_spec(load_config(os.path.join(CONFIGS, name)).model)


def test_make_divisible():
    assert [make_divisible(v) for v in (16, 4, 60, 0.25 * 128, 10)] == [16, 8, 64, 32, 16]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_outputs_and_parameter_count(name):
    spec, config, _, model = build(name)
    assert {k: tuple(v.shape[1:]) for k, v in model.output.items()} == EXPECTED_OUTPUTS[name]
    assert model.count_params() == PARAMS[name]


def test_pfld_layouts():
    """Expanded widths stay at 1.0x (128, 512, 256) as in the authors' code; S1 and S2 are pooled by default
    (0.25x exports 0.33 M parameters) and flattened as in the authors' code on request (0.59 M, 2.4 MB float32;
    the paper: 2.1 MB). Hand count of what flattening adds to 0.25x's FC input: S1 14 x 14 x 8 + S2 7 x 7 x 8
    + S3 32 = 1,992 features instead of 8 + 8 + 32 = 48."""
    from models.pfld import build_pfld

    def exported(model):
        return keras.Model(model.input, model.output["landmarks"]).count_params()

    authors, pooled = build_pfld(width=0.25, flatten_scales=True), build_pfld(width=0.25)
    assert exported(authors) == 589_384 and exported(build_pfld(flatten_scales=True)) == 1_870_408
    assert exported(pooled) == 325_000 and exported(build_pfld()) == 1_237_192
    assert exported(authors) - exported(pooled) == (1_992 - 48) * 136
    assert authors.get_layer("conv5_1_expand_conv").filters == 512
    assert build_pfld(width=0.25, fixed_expansion=False).get_layer("conv5_1_expand_conv").filters == 128


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_save_load_round_trip(name, tmp_path):
    _, _, _, model = build(name)
    size = model.input_shape[1]
    images = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    before = model.predict_on_batch(images)
    model.save(tmp_path / "m.keras")
    after = keras.saving.load_model(tmp_path / "m.keras", compile=False).predict_on_batch(images)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], atol=1e-5)


TRAINED_WITH = {"pfld": "pfld", "pfld_025": "pfld"}  # PFLD's pose subnet exists for, and learns through, its loss


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_one_training_step_reaches_every_weight(name):
    pose = {"pose_subnet": True} if name in TRAINED_WITH else {}
    spec, config, codec, model = build(name, **pose)
    assert set(spec.training_only_outputs) <= set(model.output)
    size = model.input_shape[1]
    rng = np.random.default_rng(2)
    images = tf.constant(rng.uniform(0, 255, (2, size, size, 3)).astype(np.float32))
    points = rng.uniform(0.1, 0.9, (2, 68, 2)).astype(np.float32)
    encoded = [codec.encode(p) for p in points]
    targets = {key: tf.stack([e[key] for e in encoded]) for key in encoded[0]}
    targets.update(pose=tf.constant(rng.uniform(-0.5, 0.5, (2, 3)).astype(np.float32)), balance=tf.ones(2))
    loss_config = dataclasses.replace(config.loss, name=TRAINED_WITH.get(name, config.loss.name))
    trainer = LandmarkTrainer(model, codec, loss_config)
    with tf.GradientTape() as tape:
        loss = trainer.compute_loss(y=targets, y_pred=trainer(images, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert np.isfinite(float(loss)) and float(loss) > 0
    missing = [w.path for w, g in zip(model.trainable_weights, grads) if g is None or not np.any(g.numpy())]
    assert not missing, f"weights without gradient: {missing[:5]}"


def test_pfld_loss_needs_the_pose_subnet():
    spec, config, codec, model = build("pfld_025")
    assert "pose" not in model.output and build("pfld_025", pose_subnet=True)[3].output["pose"].shape[1:] == (3,)
    images = tf.zeros((1, 112, 112, 3))
    targets = {**codec.encode(np.full((68, 2), 0.5, np.float32)), "pose": tf.zeros(3), "balance": tf.ones(())}
    targets = {k: tf.expand_dims(tf.convert_to_tensor(v), 0) for k, v in targets.items()}
    trainer = LandmarkTrainer(model, codec, dataclasses.replace(config.loss, name="pfld"))
    with pytest.raises(ValueError, match="built without: set model_args.pose_subnet: true"):
        trainer.compute_loss(y=targets, y_pred=trainer(images, training=True))


def test_pipnet_mobilenetv2_backbone_and_bad_input_size():
    model = get_spec("pipnet").build(68, num_neighbors=4, input_size=128, backbone="mobilenetv2", width=0.5)
    assert tuple(model.output["neighbor_x"].shape[1:]) == (4, 4, 272)
    with pytest.raises(ValueError, match="multiple of the stride"):
        get_spec("pipnet").build(68, input_size=100)


def test_train_help_names_every_registered_model(capsys):
    from facekit.registry import REGISTRY
    from training import train

    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    named = set(" ".join(capsys.readouterr().out.split()).split("registered model: ")[-1].split(" --data")[0]
                .replace(",", " ").split())
    assert named == set(REGISTRY)
