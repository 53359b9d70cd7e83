"""Keras landmark and detection architectures. Importing this package registers every model spec."""
from models import dbface, mtcnn, pfld, pipnet, senet  # noqa: F401  (registration side effect)
