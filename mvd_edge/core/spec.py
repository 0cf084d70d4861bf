"""The model's vocabulary, torch-free: recipes, backbones, branches, observations, ``ModelSpec``.

The torch network that realises it is :mod:`mvd_edge.model.net`; engines, the runtime and the
matcher only need these names, so they live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mvd_edge.core.errors import UsageError

RECIPES: tuple[str, ...] = ("full", "shared", "z")
#: the numeric precisions a graph or engine holds (mvd_edge.deploy.formats says which format holds which)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
BACKBONES: tuple[str, ...] = ("resnet50", "resnet18", "mobilenetv2", "tiny")
BRANCHES: tuple[str, ...] = ("rgb", "ir", "shared")
OBSERVATIONS: tuple[str, ...] = ("rgb", "ir", "shared_x", "shared_g")
# branch and input view behind each observation
OBSERVATION_SOURCES: dict[str, tuple[str, str]] = {
    "rgb": ("rgb", "x"),
    "ir": ("ir", "g"),
    "shared_x": ("shared", "x"),
    "shared_g": ("shared", "g"),
}
# observations concatenated by the ``full`` recipe, in the release's order
FULL_ORDER: tuple[str, ...] = ("ir", "shared_g", "rgb", "shared_x")
#: the one branch of a one-pass student: one backbone pass on the crop, whatever its modality
STUDENT_BRANCHES: tuple[str, ...] = ("shared",)
PAPER_BOTTLENECK: tuple[int, int, int] = (1000, 500, 512)
TINY_WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 128)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an MVDNet (stored in checkpoints)."""

    num_classes: int
    backbone: str = "resnet50"
    last_stride: int = 1
    bottleneck_dims: tuple[int, int, int] | None = None
    #: the branches built: all three for MVD, ``STUDENT_BRANCHES`` for a one-pass student
    branches: tuple[str, ...] = BRANCHES

    def __post_init__(self) -> None:
        branches = tuple(str(b) for b in self.branches)
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown or not branches or len(set(branches)) != len(branches):
            raise UsageError(f"model branches must be distinct names out of {', '.join(BRANCHES)}, got {list(branches)}")
        if "shared" not in branches:
            raise UsageError("a model needs the shared branch (every one-pass recipe runs it)")
        object.__setattr__(self, "branches", tuple(b for b in BRANCHES if b in branches))

    @property
    def is_student(self) -> bool:
        """One branch only: a one-pass student (``mvd-edge distill``), not the three-branch MVD network."""
        return self.branches == STUDENT_BRANCHES

    @property
    def recipes(self) -> tuple[str, ...]:
        """The test-time recipes this network can compute (``full`` needs all three branches)."""
        return RECIPES if self.branches == BRANCHES else ("shared", "z")

    def check_recipe(self, recipe: str) -> str:
        check_recipe(recipe)
        if recipe not in self.recipes:
            raise UsageError(f"recipe {recipe!r} needs all three branches; this {'student' if self.is_student else 'model'} "
                             f"has {', '.join(self.branches)} (recipes: {', '.join(self.recipes)})")
        return recipe

    def to_dict(self) -> dict:
        d = {**asdict(self), "bottleneck_dims": list(self.bottleneck_dims) if self.bottleneck_dims else None,
             "branches": list(self.branches)}
        if self.branches == BRANCHES:  # checkpoints of the three-branch network read as before
            del d["branches"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """Inverse of :meth:`to_dict`. A record that is not one (not a mapping, a field missing or of the
        wrong type) raises ``ValueError`` (``UsageError``) naming the field, ``model_spec.<field> ...``."""
        if not isinstance(d, Mapping):
            raise UsageError(f"model_spec must be a mapping (num_classes, backbone, last_stride, ...), "
                             f"got {type(d).__name__}")
        for key in ("num_classes", "backbone", "last_stride"):
            if key not in d:
                raise UsageError(f"model_spec.{key} is missing")
        num_classes, last_stride = d["num_classes"], d["last_stride"]
        if not _is_int(num_classes) or num_classes < 1:
            raise UsageError(f"model_spec.num_classes must be a positive integer, got {num_classes!r}")
        if d["backbone"] not in BACKBONES:
            raise UsageError(f"model_spec.backbone must be one of {', '.join(BACKBONES)}, got {d['backbone']!r}")
        if last_stride not in (1, 2) or isinstance(last_stride, bool):
            raise UsageError(f"model_spec.last_stride must be 1 or 2, got {last_stride!r}")
        dims = d.get("bottleneck_dims")
        if dims is not None and (not isinstance(dims, (list, tuple)) or len(dims) != 3
                                 or not all(_is_int(x) and x >= 1 for x in dims)):
            raise UsageError(f"model_spec.bottleneck_dims must be three positive integers or null, got {dims!r}")
        branches = d.get("branches", BRANCHES)
        if not isinstance(branches, (list, tuple)):
            raise UsageError(f"model_spec.branches must be a list of branch names, got {branches!r}")
        return cls(
            num_classes=int(num_classes),
            backbone=str(d["backbone"]),
            last_stride=int(last_stride),
            bottleneck_dims=tuple(int(x) for x in dims) if dims else None,  # type: ignore[arg-type]
            branches=tuple(str(b) for b in branches),
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe
