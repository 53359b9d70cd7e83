import cv2
import numpy as np
import tensorflow as tf

from facekit.records.schema import CropRecord, encode_example, parse_example


def test_encode_parse_round_trip_and_rgb_order():
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    points = np.array([[0.25, 0.5], [0.125, 1.0], [0.0, 0.75]])
    record = CropRecord("AFW/a b.jpg", jpeg, (450, 300), points, np.array([10.0, 20.0, 110.0, 120.0]),
                        np.array([0.1, -0.2, 0.3]), True, (1, 0, -1, 0, 1, 0))
    parsed = parse_example(tf.constant(encode_example(record)), num_points=3)
    np.testing.assert_allclose(parsed["points_norm"].numpy(), points)
    np.testing.assert_allclose(parsed["box_xyxy"].numpy(), [10, 20, 110, 120])
    np.testing.assert_allclose(parsed["pose_rad"].numpy(), [0.1, -0.2, 0.3], rtol=1e-6)
    assert parsed["pose_estimated"].numpy() == 1
    assert parsed["attributes"].numpy().tolist() == [1, 0, -1, 0, 1, 0]
    assert parsed["source_hw"].numpy().tolist() == [450, 300]
    assert parsed["source_id"].numpy() == b"AFW/a b.jpg"
    image = parsed["image"].numpy()
    assert image.shape == (16, 16, 3)
    assert image[..., 0].min() > 245 and image[..., 1:].max() < 10  # decoded as RGB: red first


def test_hand_written_wire_format_equals_tf_train_example():
    record = CropRecord("ü/x.jpg", b"\x00\xff" * 300, (7, 9), np.array([[0.5, 1e-7], [3.25, -2.0]]),
                        np.array([-3.0, 4.0, 5.5, 1e6]), np.array([1.0, -0.5, 0.25]), False,
                        (-1, 0, 1, 2**40, -(2**40), 127))

    def floats(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v).astype(np.float32)))

    def ints(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

    expected = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[record.jpeg])),
        "image/source_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=["ü/x.jpg".encode()])),
        "image/source_hw": ints([7, 9]), "landmarks/points": floats(record.points_norm),
        "crop/box_xyxy": floats(record.box_xyxy), "pose/euler_rad": floats(record.pose_rad),
        "pose/estimated": ints([0]), "attributes/flags": ints(record.attributes)}))
    assert tf.train.Example.FromString(encode_example(record)) == expected
