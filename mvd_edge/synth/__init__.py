"""Procedural synthetic cross-modal (visible / infrared) person data.

The embedded default for demos and tests: needs only numpy and OpenCV. One module a
responsibility, from who a person is to the files written:

* :mod:`mvd_edge.synth.identity`: trait vocabularies, the :class:`Identity` dataclasses
  and the seeded draw of a population (:func:`sample_identities`).
* :mod:`mvd_edge.synth.lookalike`: which people look alike across modalities.
* :mod:`mvd_edge.synth.color`: the BGR colour type, clothing palette and colour draws.
* :mod:`mvd_edge.synth.thermal`: materials, emissivities and the IR brightness of each part.
* :mod:`mvd_edge.synth.raster`: drawing a person (sprites, RGB and IR) and alpha compositing.
* :mod:`mvd_edge.synth.camera`: camera looks, backgrounds and re-id crops.
* :mod:`mvd_edge.synth.dataset`: writers for the SYSU-MM01, RegDB and LLCM layouts.
* :mod:`mvd_edge.synth.video`: synthetic IR/RGB video pairs with ground truth.
* :mod:`mvd_edge.synth.site`: synthetic multi-camera sites with ground truth.

The names below are the ones used outside the package; the rest is imported from its module.
"""

from mvd_edge.synth.camera import render_crop, sample_camera_style
from mvd_edge.synth.dataset import MARKER, SYSU_IR_CAMS, write_llcm, write_regdb, write_sysu
from mvd_edge.synth.identity import COAT_LENGTH, Identity, sample_identities
from mvd_edge.synth.lookalike import LOOK_ALIKE_TOLERANCE, cross_modal_traits, look_alike, look_alike_pairs
from mvd_edge.synth.raster import render_sprite

__all__ = [
    "COAT_LENGTH",
    "LOOK_ALIKE_TOLERANCE",
    "MARKER",
    "SYSU_IR_CAMS",
    "Identity",
    "cross_modal_traits",
    "look_alike",
    "look_alike_pairs",
    "render_crop",
    "render_sprite",
    "sample_camera_style",
    "sample_identities",
    "write_llcm",
    "write_regdb",
    "write_sysu",
]
