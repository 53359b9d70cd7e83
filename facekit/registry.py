"""Model registry: name -> spec. `models/` modules register their specs; facekit never imports `models`.

A spec ties an architecture to its codec (targets and decoding) and says which outputs exist only for
training (dropped at export). `import models` fills the registry; so does the first lookup of a name that is not
registered yet, through the `facekit.models` entry points that pyproject.toml declares (so that a spawned worker
process, which starts with an empty registry, finds the models too).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points


@dataclass(frozen=True)
class ModelSpec:
    """name: registry key; build(num_points, codec_args, **model_args) -> keras.Model with named dict outputs;
    codec: "regression", "pipnet", "centernet" or "mtcnn"; config: default YAML file name in training/configs;
    training_only_outputs: outputs dropped at export (e.g. PFLD's pose);
    task: "landmarks" (build takes num_points first, trained by facekit.alignment.training) or "detection"
    (DBFace and the MTCNN stages, trained by facekit.detection)."""

    name: str
    build: Callable
    codec: str
    config: str
    training_only_outputs: tuple[str, ...] = ()
    task: str = "landmarks"



REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def load_model_plugins() -> None:
    """Import every module declared under the `facekit.models` entry points (each registers its specs)."""
    for entry in entry_points(group="facekit.models"):
        entry.load()


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        load_model_plugins()
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(REGISTRY)} (is the project installed with "
                         "`pip install -e .`, or `models` imported?)")
    return REGISTRY[name]


def names_for_task(task: str) -> list[str]:
    return sorted(name for name, spec in REGISTRY.items() if spec.task == task)
