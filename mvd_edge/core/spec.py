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
PAPER_BOTTLENECK: tuple[int, int, int] = (1000, 500, 512)
TINY_WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 128)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an MVDNet (stored in checkpoints)."""

    num_classes: int
    backbone: str = "resnet50"
    last_stride: int = 1
    bottleneck_dims: tuple[int, int, int] | None = None

    def to_dict(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "backbone": self.backbone,
            "last_stride": self.last_stride,
            "bottleneck_dims": list(self.bottleneck_dims) if self.bottleneck_dims else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        dims = d.get("bottleneck_dims")
        return cls(
            num_classes=int(d["num_classes"]),
            backbone=str(d["backbone"]),
            last_stride=int(d["last_stride"]),
            bottleneck_dims=tuple(int(x) for x in dims) if dims else None,  # type: ignore[arg-type]
        )


def check_recipe(recipe: str) -> str:
    if recipe not in RECIPES:
        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return recipe
