"""Preprocessing, defined once: uint8 BGR crops (as OpenCV decodes them) -> network input.

Used by training evaluation, calibration and every runtime backend. numpy + OpenCV only
(the edge runtime must not import torch).

The network input is float32 ``[N, 3, H, W]``, RGB channel order, scaled to [0, 1] and
normalised with the ImageNet mean/std below (the defaults of :class:`PreprocessSpec`, whose
every field :func:`preprocess_batch` honours). The grayscale view the infrared and shared
branches also see is computed inside the network (``MVDNet``), not here; it is why exported
models need the default channel order and mean/std.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# ITU-R BT.601 luma weights on RGB, as in the MVD release: g = 0.2989 R + 0.5870 G + 0.1140 B
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)


#: ``PreprocessSpec.interpolation`` names -> OpenCV resize flags.
INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "nearest_exact": cv2.INTER_NEAREST_EXACT,
    "linear": cv2.INTER_LINEAR,
    "linear_exact": cv2.INTER_LINEAR_EXACT,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos4": cv2.INTER_LANCZOS4,
}
#: ``PreprocessSpec.color_order`` values: the channel order of the network input.
COLOR_ORDERS: tuple[str, ...] = ("RGB", "BGR")


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to reproduce the network input from a BGR crop.

    Every field is honoured by :func:`preprocess_batch`: the crop is resized to
    ``height`` x ``width`` with ``interpolation`` (a key of :data:`INTERPOLATIONS`), put in
    ``color_order`` (``"RGB"`` or ``"BGR"``, case-insensitive, stored upper-case), scaled to
    [0, 1] and normalised per network-input channel with ``mean``/``std`` (given in
    ``color_order``). Values that cannot be honoured are refused here, at construction.
    Exported models additionally need RGB order and the ImageNet mean/std, because the
    network's in-graph grayscale view assumes them (``mvd_edge.model.net.check_graph_spec``).
    """

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "RGB"  # channel order the network expects
    interpolation: str = "linear"  # cv2.INTER_LINEAR

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"PreprocessSpec.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"PreprocessSpec.{name} needs one value per channel (3), got {len(value)}")
            if not all(math.isfinite(v) for v in value):
                raise ValueError(f"PreprocessSpec.{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ValueError(f"PreprocessSpec.std must be positive, got {self.std}")
        order = str(self.color_order).upper()
        if order not in COLOR_ORDERS:
            raise ValueError(f"unsupported color_order {self.color_order!r}; preprocessing produces "
                             f"{' or '.join(COLOR_ORDERS)}")
        object.__setattr__(self, "color_order", order)
        interp = str(self.interpolation).lower()
        if interp not in INTERPOLATIONS:
            raise ValueError(f"unsupported interpolation {self.interpolation!r}; choose one of "
                             f"{', '.join(INTERPOLATIONS)}")
        object.__setattr__(self, "interpolation", interp)

    @property
    def cv2_interpolation(self) -> int:
        """The OpenCV flag for :attr:`interpolation`."""
        return INTERPOLATIONS[self.interpolation]

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        """Inverse of :meth:`to_dict`; unknown keys are refused (a field nobody would honour)."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing field(s) {sorted(unknown)}; known: "
                             f"{', '.join(f.name for f in fields(cls))}")
        # mean and std become tuples of floats in __post_init__
        return cls(height=int(d["height"]), width=int(d["width"]), mean=d["mean"], std=d["std"],
                   color_order=str(d.get("color_order", "RGB")), interpolation=str(d.get("interpolation", "linear")))


def preprocess_from_record(d: object) -> PreprocessSpec:
    """:meth:`PreprocessSpec.from_dict` for a stored record (a checkpoint's or an engine sidecar's
    ``preprocess``), strict about types: any fault is a ``ValueError`` whose message names the field
    (``preprocess.std must be positive, got [0, 1, 1]``), for the reader to prefix with the file."""
    names = [f.name for f in fields(PreprocessSpec)]
    if not isinstance(d, Mapping):
        raise ValueError(f"preprocess must be a mapping of {', '.join(names)}, got {type(d).__name__} {_short(d)}")
    unknown = sorted(str(k) for k in d if k not in names)
    if unknown:
        raise ValueError(f"preprocess has unknown field(s) {unknown}; known: {', '.join(names)}")
    for key in ("height", "width", "mean", "std"):
        if key not in d:
            raise ValueError(f"preprocess.{key} is missing")
    for key in ("height", "width"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or v < 1:
            raise ValueError(f"preprocess.{key} must be a positive integer, got {_short(v)}")
    for key in ("mean", "std"):
        v = d[key]
        if (not isinstance(v, (list, tuple)) or len(v) != 3
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in v)):
            raise ValueError(f"preprocess.{key} must be three finite numbers (one per channel), got {_short(v)}")
    if min(d["std"]) <= 0:
        raise ValueError(f"preprocess.std must be positive, got {_short(d['std'])}")
    for key, choices in (("color_order", COLOR_ORDERS), ("interpolation", tuple(INTERPOLATIONS))):
        v = d.get(key, "RGB" if key == "color_order" else "linear")
        ok = isinstance(v, str) and (v.upper() if key == "color_order" else v.lower()) in choices
        if not ok:
            raise ValueError(f"preprocess.{key} must be one of {', '.join(choices)}, got {_short(v)}")
    try:
        return PreprocessSpec.from_dict(dict(d))
    except (KeyError, TypeError, ValueError) as exc:  # a check above missed a case: still one line, still named
        raise ValueError(str(exc).replace("PreprocessSpec.", "preprocess.")) from exc


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def box_crop(img: np.ndarray, box: Sequence[float], margin: float = 0.08, aspect: float | None = 0.5,
             min_height: float = 32.0) -> np.ndarray | None:
    """The re-id crop of a person box, as the matcher takes it (None when too small).

    ``box`` is ``x1, y1, x2, y2`` in pixels. The box is grown by ``margin`` of its height on
    every side, then widened or heightened about its centre to the width/height ratio
    ``aspect`` (``None``: keep the box's ratio), so the person is centred with some context
    like a re-id training crop; parts outside the image are filled by replicating the border.
    Returns None when the part of the box inside the image is lower than ``min_height`` or
    narrower than 4 px. The crop is not resized.
    """
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    vx1, vy1, vx2, vy2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
    if vy2 - vy1 < min_height or vx2 - vx1 < 4:
        return None
    m = margin * (y2 - y1)
    x1, y1, x2, y2 = x1 - m, y1 - m, x2 + m, y2 + m
    if aspect:
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        if bw / bh < aspect:
            bw = bh * aspect
        else:
            bh = bw / aspect
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    ix1, iy1, ix2, iy2 = int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))
    cx1, cy1, cx2, cy2 = max(0, ix1), max(0, iy1), min(w, ix2), min(h, iy2)
    crop = img[cy1:cy2, cx1:cx2]
    pads = (cy1 - iy1, iy2 - cy2, cx1 - ix1, ix2 - cx2)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    return crop


def box_overlap(boxes: np.ndarray) -> np.ndarray:
    """For each ``x1, y1, x2, y2`` box of ``[N, 4]``, the largest fraction of its area covered by one other box."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    if n < 2:
        return np.zeros(n, np.float32)
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    np.fill_diagonal(inter, 0.0)
    return (inter.max(axis=1) / area).astype(np.float32)


def check_crop(crop: np.ndarray, index: int = 0) -> np.ndarray:
    """Validate one crop: uint8 ``[H, W, 3]`` (or ``[H, W]`` grayscale, expanded to 3 channels)."""
    if not isinstance(crop, np.ndarray):
        raise TypeError(f"crop {index}: expected a numpy array, got {type(crop).__name__}")
    if crop.dtype != np.uint8:
        raise ValueError(f"crop {index}: expected dtype uint8, got {crop.dtype}")
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"crop {index}: expected shape [H, W, 3], got {list(crop.shape)}")
    if crop.shape[0] < 2 or crop.shape[1] < 2:
        raise ValueError(f"crop {index}: too small ({crop.shape[0]}x{crop.shape[1]})")
    return crop


def resize_crop(crop_bgr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 BGR ``[h, w, 3]`` -> uint8 ``[H, W, 3]`` at the spec's size, interpolation and channel order."""
    crop_bgr = check_crop(crop_bgr)
    resized = cv2.resize(crop_bgr, (spec.width, spec.height), interpolation=spec.cv2_interpolation)
    if spec.color_order == "BGR":
        return resized
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def normalize(rgb_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 ``[..., H, W, 3]`` in the spec's channel order -> float32 ``[..., 3, H, W]`` normalised."""
    x = rgb_uint8.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def preprocess_batch(crops: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """List of uint8 BGR crops of any size -> float32 ``[N, 3, H, W]`` network input (see :class:`PreprocessSpec`)."""
    if len(crops) == 0:
        return np.zeros((0, 3, spec.height, spec.width), np.float32)
    batch = np.empty((len(crops), spec.height, spec.width, 3), np.uint8)
    for i, crop in enumerate(crops):
        batch[i] = resize_crop(check_crop(crop, i), spec)
    return normalize(batch, spec)


def read_image(path: str) -> np.ndarray | None:
    """Decode an image file to uint8 BGR ``[H, W, 3]``; ``None`` if unreadable or corrupt."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None or data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        return None
    return img

