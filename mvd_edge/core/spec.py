"""The model's vocabulary, torch-free: recipes, backbones, branches, observations, ``ModelSpec``.

The torch network that realises it is :mod:`mvd_edge.model.net`; engines, the runtime and the
matcher only need these names, so they live here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mvd_edge.core.errors import UsageError

RECIPES: tuple[str, ...] = ("full", "shared", "z")
BACKBONES: tuple[str, ...] = ("resnet50", "resnet18", "tiny")
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
        d = {
            "num_classes": self.num_classes,
            "backbone": self.backbone,
            "last_stride": self.last_stride,
            "bottleneck_dims": list(self.bottleneck_dims) if self.bottleneck_dims else None,
        }
        if self.branches != BRANCHES:  # checkpoints of the three-branch network read as before
            d["branches"] = list(self.branches)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        dims = d.get("bottleneck_dims")
        return cls(
            num_classes=int(d["num_classes"]),
            backbone=str(d["backbone"]),
            last_stride=int(d["last_stride"]),
            bottleneck_dims=tuple(int(x) for x in dims) if dims else None,  # type: ignore[arg-type]
            branches=tuple(str(b) for b in d.get("branches", BRANCHES)),
        )


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe
