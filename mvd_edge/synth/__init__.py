"""Procedural synthetic cross-modal (visible / infrared) person data.

The embedded default for demos and tests: needs only numpy and OpenCV.

* :mod:`mvd_edge.synth.people`: identities, sprites (for videos) and re-id crops.
* :mod:`mvd_edge.synth.dataset`: writers for the SYSU-MM01, RegDB and LLCM layouts.
"""

from mvd_edge.synth.dataset import (
    LLCM_CAMS,
    MARKER,
    SYSU_CAMS,
    SYSU_IR_CAMS,
    write_llcm,
    write_regdb,
    write_sysu,
)
from mvd_edge.synth.people import (
    ACCESSORIES,
    COAT_LENGTH,
    HAIR_STYLES,
    LOWER_KINDS,
    MATERIALS,
    PATTERNS,
    SLEEVES,
    VIEWS,
    Accessory,
    Body,
    CameraStyle,
    Hair,
    Identity,
    LowerGarment,
    Shoes,
    UpperGarment,
    cross_modal_traits,
    look_alike_pairs,
    render_background,
    render_crop,
    render_sprite,
    sample_camera_style,
    sample_identities,
    sample_identity,
)

__all__ = [
    "ACCESSORIES",
    "COAT_LENGTH",
    "HAIR_STYLES",
    "LLCM_CAMS",
    "LOWER_KINDS",
    "MARKER",
    "MATERIALS",
    "PATTERNS",
    "SLEEVES",
    "SYSU_CAMS",
    "SYSU_IR_CAMS",
    "VIEWS",
    "Accessory",
    "Body",
    "CameraStyle",
    "Hair",
    "Identity",
    "LowerGarment",
    "Shoes",
    "UpperGarment",
    "cross_modal_traits",
    "look_alike_pairs",
    "render_background",
    "render_crop",
    "render_sprite",
    "sample_camera_style",
    "sample_identities",
    "sample_identity",
    "write_llcm",
    "write_regdb",
    "write_sysu",
]
