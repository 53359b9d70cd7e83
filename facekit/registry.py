"""Model registry: name -> spec. `models/` modules register their specs; facekit never imports `models`.

A spec ties an architecture to its codec (targets and decoding) and says which outputs exist only for
training (dropped at export). `import models` fills the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ModelSpec:
    """name: registry key; build(num_points, codec_args, **model_args) -> keras.Model with named dict outputs;
    codec: "regression" or "pipnet"; config: default YAML file name in training/configs;
    training_only_outputs: outputs dropped at export (e.g. PFLD's pose);
    task: "landmarks" (build takes num_points first, trained by facekit.training) or "detection" (MTCNN stages,
    trained by facekit.mtcnn_training)."""

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


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(REGISTRY)} (did you `import models`?)")
    return REGISTRY[name]


def names_for_task(task: str) -> list[str]:
    return sorted(name for name, spec in REGISTRY.items() if spec.task == task)
