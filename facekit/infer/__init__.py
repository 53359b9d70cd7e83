"""Inference on LiteRT only: importing this package never imports TensorFlow."""
