import numpy as np
import pytest
import tensorflow as tf

from facekit.codecs import codec_from_dict, make_codec
from facekit.codecs.pipnet import mean_shape_neighbors


def random_points(n, k, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, (n, k, 2)).astype(np.float32)


def test_regression_round_trip():
    codec = make_codec("regression", 68)
    points = random_points(3, 68)
    encoded = tf.stack([codec.encode(p)["landmarks"] for p in points])
    assert encoded.shape == (3, 136) and encoded[0, 2] == points[0, 1, 0]
    np.testing.assert_array_equal(codec.decode({"landmarks": encoded}).numpy(), points)


def test_neighbors_by_hand():
    shape = np.array([[0, 0], [1, 0], [3, 0], [10, 0]], np.float32)
    np.testing.assert_array_equal(mean_shape_neighbors(shape, 2), [[1, 2], [0, 2], [1, 0], [2, 1]])


def test_pipnet_encode_golden_values():
    train = random_points(20, 68)
    codec = make_codec("pipnet", 68, train, grid=8, num_neighbors=10)
    points = train[0].copy()
    points[0] = [0.3, 0.7]             # p * 8 = (2.4, 5.6): cell (2, 5), offset (0.4, 0.6)
    target = codec.encode(points)
    assert target["score"].shape == (8, 8, 68)
    assert target["score"][5, 2, 0] == 1.0 and float(tf.reduce_sum(target["score"][..., 0])) == 1.0
    np.testing.assert_allclose(target["offset"][0], [0.4, 0.6], atol=1e-6)
    j = codec.neighbors[0, 0]
    np.testing.assert_allclose(target["neighbor_offset"][0, 0], points[j] * 8 - [2, 5], atol=1e-5)


def perfect_outputs(codec, points):
    """Model outputs that a perfect PIPNet would give for points (N, K, 2): every cell carries the exact offsets."""
    g, k, c = codec.grid, codec.num_points, codec.num_neighbors
    score, off, nb = [], [], []
    for p in points:
        t = codec.encode(p)
        score.append(t["score"])
        off.append(t["offset"])
        nb.append(t["neighbor_offset"])
    score, off, nb = tf.stack(score), tf.stack(off), tf.stack(nb)
    n = len(points)
    tile = lambda v: tf.tile(tf.reshape(v, [n, 1, 1, -1]), [1, g, g, 1])  # noqa: E731
    return {"score": score, "offset_x": tile(off[..., 0]), "offset_y": tile(off[..., 1]),
            "neighbor_x": tile(tf.reshape(nb[..., 0], [n, k * c])),
            "neighbor_y": tile(tf.reshape(nb[..., 1], [n, k * c]))}


def test_pipnet_round_trip_and_neighbour_averaging():
    train = random_points(50, 68, seed=1)
    codec = make_codec("pipnet", 68, train)
    points = random_points(4, 68, seed=2)
    outputs = perfect_outputs(codec, points)
    np.testing.assert_allclose(codec.decode(outputs).numpy(), points, atol=1e-5)
    # Shift one landmark's own offset by +1 cell: its decoded x moves by 1 / (G * votes), not 1 / G.
    outputs["offset_x"] = outputs["offset_x"] + tf.one_hot(0, 68)
    moved = codec.decode(outputs).numpy()[:, 0, 0] - points[:, 0, 0]
    np.testing.assert_allclose(moved, 1 / 8 / codec._votes_per_point[0], atol=1e-5)


def test_pipnet_decode_survives_int8_quantization(tmp_path):
    """The decode converted to full-integer TFLite (as export does for int8) stays within a few int8 steps of
    float: it once used a one-hot mask, which TFLite's int8 ONE_HOT turned into 0.5 everywhere."""
    from ai_edge_litert.interpreter import Interpreter

    codec = make_codec("pipnet", 68, random_points(50, 68, seed=1))
    shapes = {name: v.shape[1:] for name, v in perfect_outputs(codec, random_points(1, 68)).items()}
    signature = tf.function(lambda score, offset_x, offset_y, neighbor_x, neighbor_y: {"points": codec.decode(
        dict(score=score, offset_x=offset_x, offset_y=offset_y, neighbor_x=neighbor_x, neighbor_y=neighbor_y))})
    specs = {name: tf.TensorSpec((1, *shape), tf.float32, name=name) for name, shape in shapes.items()}
    tf.saved_model.save(tf.Module(), str(tmp_path / "sm"), signatures=signature.get_concrete_function(**specs))
    rng = np.random.default_rng(0)

    def noisy(seed):  # a trained model's maps: the right cells win, the rest is noise
        maps = perfect_outputs(codec, random_points(1, 68, seed=seed))
        return {k: (v + rng.normal(0, 0.05, v.shape)).numpy().astype(np.float32) for k, v in maps.items()}

    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (noisy(seed) for seed in range(10, 40))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    run = Interpreter(model_content=converter.convert()).get_signature_runner()
    for seed in range(5):
        maps = noisy(100 + seed)
        quantized, exact = run(**maps)["points"], codec.decode(maps).numpy()
        assert np.abs(quantized - exact).max() < 0.01, np.abs(quantized - exact).max()  # 1/100 of the crop


def test_pipnet_codec_saves_and_loads():
    codec = make_codec("pipnet", 68, random_points(10, 68), grid=4, num_neighbors=5)
    again = codec_from_dict(codec.to_dict())
    assert again.grid == 4 and again.num_neighbors == 5
    np.testing.assert_array_equal(again.neighbors, codec.neighbors)


def test_pipnet_codec_rejects_bad_training_points():
    with pytest.raises(ValueError, match="shape"):
        make_codec("pipnet", 68, np.zeros((10, 5, 2)))
    with pytest.raises(ValueError, match="unknown codec"):
        make_codec("heatmap", 68)
