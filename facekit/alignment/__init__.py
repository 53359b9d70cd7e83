"""The landmark wing: the tf.data crop pipeline and its landmark-aware augmentation (data, augment), the landmark
trainer and its validation callback (training), export_run (export), evaluation and metrics (NME, FR, AUC, CED,
regions, yaw bins)."""
