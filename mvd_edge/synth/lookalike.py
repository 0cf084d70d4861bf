"""Which synthetic people look alike across modalities (colour in RGB, emissivity in IR apart).

Across modalities colours and emissivities cannot be compared, so two people whose shape
and pattern cues agree are a hard pair even for a good cross-modal model, like two people
in the same uniform. This module owns that rule: the discrete traits that show in both
modalities (:func:`cross_modal_traits`), how close the continuous ones must be
(:data:`LOOK_ALIKE_TOLERANCE`), and :func:`look_alike` / :func:`look_alike_pairs`, which
the synthetic videos report in their ground truth (``look_alikes``).
"""

from __future__ import annotations

from typing import Sequence

from mvd_edge.synth.identity import COAT_LENGTH, Identity

__all__ = ["LOOK_ALIKE_TOLERANCE", "cross_modal_traits", "look_alike", "look_alike_pairs"]

#: How close two people's continuous cross-modal traits must be for them to count as look-alikes:
#: stripe/check cycles over the torso, hem of a coat (fraction of height), shorts/skirt length
#: (fraction of the leg). Judgement calls: about a third of each trait's range.
LOOK_ALIKE_TOLERANCE: dict[str, float] = {"pattern_freq": 1.0, "coat_length": 0.04, "lower_length": 0.12}


def cross_modal_traits(identity: Identity) -> tuple[str, ...]:
    """The discrete traits of ``identity`` that show in both modalities.

    Colours show only in RGB and emissivities only in IR, so across modalities people
    can be told apart only by shape and pattern: hair style, upper-garment pattern,
    sleeves, coat or not, lower-garment kind and accessory kind. (Which shoulder a bag
    hangs on is left out: it flips between front and back views and under the training's
    horizontal flips.) Body proportions differ between people by a few percent of the
    height only.
    """
    return (identity.hair.style, identity.upper.pattern, identity.upper.sleeves,
            "coat" if identity.upper.length > COAT_LENGTH else "no coat", identity.lower.kind,
            identity.accessory.kind)


def look_alike(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` look alike across modalities: the same :func:`cross_modal_traits`,
    and stripe/check frequency, coat length and shorts/skirt length within
    :data:`LOOK_ALIKE_TOLERANCE` (a logo or a plain garment has no frequency to tell)."""
    if cross_modal_traits(a) != cross_modal_traits(b):
        return False
    tol = LOOK_ALIKE_TOLERANCE
    if a.upper.pattern in ("hstripes", "vstripes", "checks") and \
            abs(a.upper.pattern_freq - b.upper.pattern_freq) >= tol["pattern_freq"]:
        return False
    if a.upper.length > COAT_LENGTH and abs(a.upper.length - b.upper.length) >= tol["coat_length"]:
        return False
    return a.lower.kind == "trousers" or abs(a.lower.length - b.lower.length) < tol["lower_length"]


def look_alike_pairs(identities: Sequence[Identity]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of people that :func:`look_alike` (see the module docstring)."""
    n = len(identities)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if look_alike(identities[i], identities[j])]
