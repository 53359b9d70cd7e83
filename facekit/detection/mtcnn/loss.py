"""MTCNN's multi-task loss: OHEM face classification, box and landmark L2 on the sample kinds that carry them,
weighted per stage as in the MTCNN paper."""
from __future__ import annotations

import tensorflow as tf

from facekit.records.schema import SampleKind

# (face, box, landmarks) loss weights per stage, as in the MTCNN paper
LOSS_WEIGHTS = {"mtcnn_pnet": (1.0, 0.5, 0.5), "mtcnn_rnet": (1.0, 0.5, 0.5), "mtcnn_onet": (1.0, 0.5, 1.0)}


def ohem_face_loss(face_prob, kinds, keep: float = 0.7):
    """Cross-entropy over negative and positive samples, averaged over the hardest `keep` fraction of them
    (online hard example mining). face_prob (N, 2), kinds (N,) SampleKind values -> scalar."""

    kinds = tf.cast(tf.reshape(kinds, [-1]), tf.int32)
    face_prob = tf.reshape(tf.cast(face_prob, tf.float32), [-1, 2])
    used = (kinds == SampleKind.NEGATIVE) | (kinds == SampleKind.POSITIVE)
    label = tf.cast(kinds == SampleKind.POSITIVE, tf.int32)
    probability = tf.gather(face_prob, label, axis=1, batch_dims=1)
    loss = -tf.math.log(tf.clip_by_value(probability, 1e-10, 1.0))
    count = tf.maximum(tf.cast(tf.floor(tf.reduce_sum(tf.cast(used, tf.float32)) * keep), tf.int32), 1)
    hardest, _ = tf.math.top_k(tf.where(used, loss, -1.0), k=count)
    return tf.reduce_mean(tf.maximum(hardest, 0.0))


def masked_l2(predicted, target, mask):
    """Mean over masked samples of the summed squared error: predicted, target (N, C), mask (N,) bool -> scalar."""
    predicted = tf.reshape(tf.cast(predicted, tf.float32), tf.shape(target))
    per_sample = tf.reduce_sum(tf.square(predicted - tf.cast(target, tf.float32)), axis=-1)
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(per_sample * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def mtcnn_loss(outputs: dict, kinds, box_targets, landmark_targets, weights=(1.0, 0.5, 0.5), keep: float = 0.7):
    """OHEM face loss + L2 box loss on positive and part samples + L2 landmark loss on landmark samples.
    -> (total, {"face", "box", "landmarks"})."""

    kinds = tf.cast(tf.reshape(kinds, [-1]), tf.int32)
    parts = {"face": ohem_face_loss(outputs["face"], kinds, keep),
             "box": masked_l2(outputs["box"], box_targets, (kinds == SampleKind.POSITIVE) | (kinds == SampleKind.PART))}
    total = weights[0] * parts["face"] + weights[1] * parts["box"]
    if "landmarks" in outputs:
        parts["landmarks"] = masked_l2(outputs["landmarks"], landmark_targets, kinds == SampleKind.LANDMARK)
        total += weights[2] * parts["landmarks"]
    return total, parts
