"""Training configuration: YAML per model -> frozen dataclasses, `--set a.b=value` overrides, saved resolved.

Every key has a default here, so a YAML file only states what differs. An unknown key is an error that names
the key and the file, because a misspelt option that is silently ignored wastes a training run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import yaml

from facekit.files import read_yaml


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 32
    shuffle_buffer: int = 4096
    cache: bool = True            # keep decoded, resized crops in memory (small sets)
    parallel_reads: int = 4
    image_size: int = 256         # detection: side of the square training canvas (a multiple of 32)
    folder_weights: tuple = ()    # detection: sampling weight per --data folder (default: equal)
    yaw_bins: tuple = ()          # landmarks: |yaw| bin edges in degrees, e.g. [30, 60]; samples are then drawn
    yaw_weights: tuple = ()       # from the bins in these proportions (default: equal), not as the data holds them
    pipeline_threads: int | None = None  # landmark tf.data's own thread pool; 0: TF's shared pool; None: chosen
    # from the machine (facekit.alignment.data.input_threads): 1 on a CPU-only machine with <= 2 cores, where the
    # pipeline stops competing with the train step's threads (loop/step 0.78-0.88 -> 0.91-1.09, train_throughput),
    # else TF's shared pool, so that many cores or a GPU are not starved by one input thread


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True             # horizontal flip with the scheme's permutation, p = 0.5
    rotation_deg: float = 30.0    # uniform in +-rotation_deg
    scale: tuple = (0.9, 1.1)     # uniform zoom range
    translate: float = 0.05       # uniform shift in +-translate of the crop side
    color_jitter: bool = True     # brightness, contrast, saturation, hue
    grey: float = 0.1             # probability of a greyscale image
    blur: float = 0.1             # probability of a Gaussian blur
    occlusion: float = 0.2        # probability of a random filled rectangle
    rotation_p: float = 1.0       # probability of a rotation (detection: DBFace's 0.5 with +-45 deg)
    mosaic: float = 0.0           # detection: probability of a 2x2 mosaic of four images
    face_size: tuple = (12.0, 256.0)  # detection: log-uniform range of the anchor face's side on the canvas (px)


@dataclass(frozen=True)
class LossConfig:
    name: str = "l2"              # l2, l1, wing, smooth_l1, pfld, pipnet
    wing_w: float = 10.0          # Wing loss width, in the units of `scale` (pixels of the input crop)
    wing_epsilon: float = 2.0
    smooth_l1_beta: float = 1.0
    scale: float = 1.0            # regression losses see points_norm * scale (e.g. the input size)
    angle_weight_offset: float = 1.0  # PFLD: weight = offset + sum(1 - cos(angle error)); 0 is the paper's
    balance_cap: float = 10.0     # PFLD: cap on a class's inverse frequency (see losses.balance_table)
    pfld_distance: str = "l2"     # PFLD: the per-sample distance its weights multiply: l2 (squared, the paper), l1
    score_weight: float = 10.0    # PIPNet: weight of the score-map MSE
    offset_weight: float = 1.0    # PIPNet: weight of the own-offset L1
    neighbor_weight: float = 1.0  # PIPNet: weight of the neighbour-offset L1
    giou_weight: float = 5.0      # detection: weight of the GIoU box loss
    landmark_weight: float = 0.1  # detection: weight of the Wing landmark loss


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"            # adam, adamw
    weight_decay: float = 1e-4    # adamw only
    clipnorm: float | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "exponential"     # exponential, cosine, piecewise, constant
    lr: float = 1e-3
    decay_rate: float = 0.98      # exponential: lr * decay_rate ** (step / decay_steps), staircase
    decay_steps: int = 1000
    warmup_steps: int = 0         # cosine: linear warm-up from 0 to lr
    final_fraction: float = 0.0   # cosine: final lr as a fraction of lr
    boundaries: tuple = ()        # piecewise: step boundaries, len(values) == len(boundaries) + 1
    values: tuple = ()


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    seed: int = 0
    max_minutes: float | None = None  # stop after the epoch that passes this wall-clock budget
    normalize: str = "inter_ocular"   # NME normaliser used for validation and best checkpoint
    steps_per_epoch: int | None = None  # default: training records // batch size
    val_size: int = 640               # detection: validation photos are letterboxed to this square
    val_score: float = 0.05           # detection: lowest score kept for validation AP
    init_weights: str | None = None   # start from these weights (a run folder's best.keras, or a .keras file)


@dataclass(frozen=True)
class Config:
    model: str
    model_args: dict = field(default_factory=dict)  # keyword arguments of the model builder
    codec_args: dict = field(default_factory=dict)  # keyword arguments of the codec (PIPNet: grid, num_neighbors)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING \
            else fields[name].default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}: {name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def apply_override(values: dict, assignment: str) -> None:
    """Apply one `a.b=value` (value parsed as YAML) to a nested dict, in place."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected key=value, e.g. train.epochs=5")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = values
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {assignment!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(text)


def load_config(path: str, overrides: list[str] = (), model: str | None = None) -> Config:
    """YAML file + `a.b=value` overrides -> Config. ValueError names the file and the bad key."""
    values = read_yaml(path) or {}
    if model is not None:
        values.setdefault("model", model)
    for assignment in overrides:
        apply_override(values, assignment)
    if "model" not in values:
        raise ValueError(f"{path}: no `model` key")
    return _build(Config, values, path)


def save_config(config: Config, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
