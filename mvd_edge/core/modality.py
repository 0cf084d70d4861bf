"""Modalities are an enum, never bare 0/1/2 (house rule)."""

from __future__ import annotations

from enum import IntEnum

from mvd_edge.core.errors import UsageError


class Modality(IntEnum):
    """Imaging modality of a crop or a camera.

    The integer values only exist so modalities can ride in integer tensors
    (``torch.long``) next to identity labels; code compares against the enum.
    """

    VISIBLE = 1
    INFRARED = 2

    @classmethod
    def parse(cls, value: "str | int | Modality") -> "Modality":
        """Accept ``"rgb"``/``"visible"``/``"ir"``/``"infrared"``/``"thermal"`` or the enum."""
        if isinstance(value, Modality):
            return value
        if isinstance(value, int):
            return cls(value)
        key = str(value).strip().lower()
        if key in {"rgb", "vis", "visible", "color", "colour"}:
            return cls.VISIBLE
        if key in {"ir", "nir", "infrared", "thermal", "tir"}:
            return cls.INFRARED
        raise UsageError(f"unknown modality {value!r}: use 'rgb' or 'ir'")

    @property
    def short(self) -> str:
        return "rgb" if self is Modality.VISIBLE else "ir"
