"""The detector wing: what the face detectors share (detection records: convert; the tf.data scene pipeline with
mosaic: data; AP with the WIDER protocol: evaluation), with DBFace's trainer and export in dbface/ and MTCNN's
networks, loss, sample mining and trainer in mtcnn/. Boxes and NMS are in facekit.boxes (the runtime uses them)."""
