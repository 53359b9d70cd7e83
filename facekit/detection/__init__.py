"""What the face detectors share: detection records (conversion), the tf.data scene pipeline with mosaic, and
training and evaluation helpers. Boxes and NMS are in facekit.boxes, AP in facekit.detection_eval."""
