"""Fold MVDNet's embedding head into a few flat parameter segments (pure torch, no Triton).

The head of a recipe (see ``mvd_edge.model.net``) maps the recipe's backbone feature maps
``[N, C, h, w]`` (one per observation) to an L2-normalised embedding::

    f_m = GAP(map_m)                          # [N, C], pooling is linear
    v_m = BN_neck_m(f_m) = f_m * a_m + c_m     # a = gamma / sqrt(var + eps), c = beta - mean * a
    full   : normalize(cat(v_ir, v_shared_g, v_rgb, v_shared_x))         D = 4C
    shared : normalize(v_shared_x)                                        D = C
    z      : normalize(L3(relu(BN2(L2(relu(BN1(L1(v_shared_x))))))))      D = d3

Folding (done in float64, then cast once to the storage dtype):

* BN neck -> per-channel ``scale`` / ``shift`` (``y = x * scale + shift``), stored ``[M, C]``.
* ``z``: every BatchNorm is folded into the Linear before it (``W' = diag(s) W``,
  ``b' = s * b + t``), and the BN neck is folded into the first Linear as well
  (``W1'' = W1' diag(a)``, ``b1'' = W1' c + b1'``), so the ``z`` head is three plain
  GEMMs on the pooled features.
* The ``1 / (h * w)`` of the average pool is *not* baked into the stored numbers: the
  kernels multiply the fp32 spatial sums by ``1 / (h * w)`` at run time (one multiply),
  so one folded head serves any input size (16x8 at 256x128, 18x9 at 288x144, ...).
  Baking it into fp16 ``scale`` would tie the parameters to one input size for no gain.

All segments live in one flat, contiguous ``params`` tensor (the layout is
``param_layout``), each segment starting at a multiple of ``PARAM_ALIGN`` elements so
the kernels can use aligned vector loads. The same flat tensor is the single parameter
input of the ONNX ``mvd::FusedHead`` node and of the TensorRT plugin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mvd_edge.core.spec import OBSERVATION_SOURCES, RECIPES, check_recipe
from mvd_edge.model.net import MVDNet

PARAM_ALIGN = 64  # elements; every segment of the flat parameter vector starts at a multiple of this
FP16_MAX = 65504.0
STORAGE_DTYPES = (torch.float16, torch.float32, torch.float64)


def _round_up(x: int, m: int = PARAM_ALIGN) -> int:
    return (x + m - 1) // m * m


def param_layout(recipe: str, num_maps: int, dims: tuple[int, ...]) -> dict[str, tuple[int, tuple[int, ...]]]:
    """``{segment name: (offset, shape)}`` of the flat parameter vector, in storage order.

    ``dims`` is ``(C, D)`` for ``full``/``shared`` and ``(C, d1, d2, d3)`` for ``z``.
    full/shared: ``scale [M, C]``, ``shift [M, C]``.
    z: ``w1 [d1, C]``, ``b1 [d1]``, ``w2 [d2, d1]``, ``b2 [d2]``, ``w3 [d3, d2]``, ``b3 [d3]``
    (``nn.Linear`` layout: ``[out, in]``, row-major). The kernels recompute these offsets
    from ``dims`` with the same rounding, so this function is the single definition.
    """
    recipe = check_recipe(recipe)
    if recipe == "z":
        C, d1, d2, d3 = dims
        shapes = [("w1", (d1, C)), ("b1", (d1,)), ("w2", (d2, d1)), ("b2", (d2,)), ("w3", (d3, d2)), ("b3", (d3,))]
    else:
        C, _ = dims
        shapes = [("scale", (num_maps, C)), ("shift", (num_maps, C))]
    layout: dict[str, tuple[int, tuple[int, ...]]] = {}
    off = 0
    for name, shape in shapes:
        layout[name] = (off, shape)
        off = _round_up(off + math.prod(shape))
    layout["_total"] = (off, ())
    return layout


@dataclass(frozen=True, eq=False)
class FoldedHead:
    """Folded embedding head of one recipe.

    ``params`` is flat and contiguous (fp16, fp32 or fp64) on one device; the named
    segments are views into it (``scale``, ``shift`` ``[M, C]`` for full/shared; ``w1``
    ``[d1, C]``, ``b1``, ``w2`` ``[d2, d1]``, ``b2``, ``w3`` ``[d3, d2]``, ``b3`` for z).
    ``dims`` is ``(C, D)`` or ``(C, d1, d2, d3)``; output is ``[N, out_dim]`` float32.
    """

    recipe: str
    observations: tuple[str, ...]
    dims: tuple[int, ...]
    params: torch.Tensor

    @property
    def num_maps(self) -> int:
        return len(self.observations)

    @property
    def feat_dim(self) -> int:
        return self.dims[0]

    @property
    def out_dim(self) -> int:
        return self.dims[-1] if self.recipe == "z" else self.dims[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.params.dtype

    @property
    def device(self) -> torch.device:
        return self.params.device

    @property
    def layout(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        return param_layout(self.recipe, self.num_maps, self.dims)

    def segment(self, name: str) -> torch.Tensor:
        """A named view into ``params`` (see ``param_layout``)."""
        layout = self.layout
        if name not in layout or name == "_total":
            raise KeyError(f"no segment {name!r} in a {self.recipe!r} head; have {[k for k in layout if k != '_total']}")
        return _view(self.params, layout[name])

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in ("scale", "shift", "w1", "b1", "w2", "b2", "w3", "b3"):
            return self.segment(name)
        raise AttributeError(name)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "FoldedHead":
        """Copy to another device/dtype (fp16 conversion is range-checked)."""
        p = self.params
        if dtype is not None and dtype != p.dtype:
            _check_storage_dtype(dtype)
            _check_fp16_range(p, dtype)
            p = p.to(dtype)
        if device is not None:
            p = p.to(device)
        return FoldedHead(self.recipe, self.observations, self.dims, p.contiguous())


def _view(params: torch.Tensor, entry: tuple[int, tuple[int, ...]]) -> torch.Tensor:
    """The segment of ``params`` at a :func:`param_layout` entry ``(offset, shape)``."""
    off, shape = entry
    return params[off:off + math.prod(shape)].view(shape)


def _check_storage_dtype(dtype: torch.dtype) -> None:
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"folded head dtype must be one of {STORAGE_DTYPES}, got {dtype}")


def _check_fp16_range(t: torch.Tensor, dtype: torch.dtype) -> None:
    if dtype == torch.float16:
        peak = float(t.abs().max()) if t.numel() else 0.0
        if not peak < FP16_MAX:
            raise ValueError(
                f"a folded head parameter reaches |{peak:.4g}|, beyond the fp16 range ({FP16_MAX}); "
                "fold with dtype=torch.float32 instead"
            )


def bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm1d as ``(scale, shift)`` in float64: ``bn(x) == x * scale + shift``."""
    if bn.training:
        raise ValueError("BatchNorm is in training mode: call model.eval() before folding")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm has no running statistics (track_running_stats=False); it cannot be folded")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    inv_std = torch.rsqrt(var + bn.eps)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma * inv_std
    return scale, beta - mean * scale


def _linear64(lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    w = lin.weight.detach().double()
    b = lin.bias.detach().double() if lin.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
    return w, b


def _bottleneck_layers(bottleneck: nn.Sequential) -> tuple[nn.Linear, nn.BatchNorm1d, nn.Linear, nn.BatchNorm1d, nn.Linear]:
    kinds = [type(m) for m in bottleneck]
    expect = [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    if kinds != expect:
        raise ValueError(
            "bottleneck is not Linear-BN-ReLU-Linear-BN-ReLU-Linear; got " + "-".join(k.__name__ for k in kinds)
        )
    return bottleneck[0], bottleneck[1], bottleneck[3], bottleneck[4], bottleneck[6]


def fold_head(model: MVDNet, recipe: str | None = None, dtype: torch.dtype = torch.float16,
              device: torch.device | str | None = None) -> FoldedHead:
    """Fold the head of ``recipe`` of an eval-mode ``model`` into a ``FoldedHead``.

    ``dtype``: storage dtype of the parameters (fp16 or fp32; fp64 for exact checks).
    ``device``: where ``params`` lives (default: the model's device).
    Raises ``ValueError`` for a training-mode model, BN without running stats, or
    parameters that overflow fp16.
    """
    recipe = check_recipe(recipe or model.recipe)
    _check_storage_dtype(dtype)
    if model.training:
        raise ValueError("fold_head needs an eval-mode model (BatchNorm must use running statistics): call model.eval()")
    names = tuple(model.recipe_observations(recipe))
    heads = [model.branches[OBSERVATION_SOURCES[n][0]].head for n in names]
    C = heads[0].bn_neck.num_features
    neck = [bn_scale_shift(h.bn_neck) for h in heads]
    if recipe == "z":
        a, c = neck[0]
        l1, bn1, l2, bn2, l3 = _bottleneck_layers(heads[0].bottleneck)
        w1, b1 = _linear64(l1)
        s1, t1 = bn_scale_shift(bn1)
        w2, b2 = _linear64(l2)
        s2, t2 = bn_scale_shift(bn2)
        w3, b3 = _linear64(l3)
        w1f = s1[:, None] * w1          # BN1 into L1
        b1f = s1 * b1 + t1
        b1ff = w1f @ c + b1f            # BN neck into L1 (shift first, it uses the unscaled W1')
        w1ff = w1f * a[None, :]
        w2f = s2[:, None] * w2
        b2f = s2 * b2 + t2
        dims = (C, w1.shape[0], w2.shape[0], w3.shape[0])
        segments = {"w1": w1ff, "b1": b1ff, "w2": w2f, "b2": b2f, "w3": w3, "b3": b3}
    else:
        D = C * len(names)
        dims = (C, D)
        segments = {"scale": torch.stack([s for s, _ in neck]), "shift": torch.stack([t for _, t in neck])}
    layout = param_layout(recipe, len(names), dims)
    flat = torch.zeros(layout["_total"][0], dtype=torch.float64, device=segments[next(iter(segments))].device)
    for name, value in segments.items():
        off, shape = layout[name]
        if tuple(value.shape) != shape:
            raise AssertionError(f"segment {name}: shape {tuple(value.shape)} != layout {shape}")
        flat[off:off + value.numel()] = value.reshape(-1)
    _check_fp16_range(flat, dtype)
    target = torch.device(device) if device is not None else flat.device
    params = flat.to(device=target, dtype=dtype).contiguous()
    return FoldedHead(recipe, names, tuple(int(d) for d in dims), params)


def _check_maps(maps, num_maps: int, C: int | None = None) -> None:
    if len(maps) != num_maps:
        raise ValueError(f"expected {num_maps} feature maps, got {len(maps)}")
    shape = tuple(maps[0].shape)
    if len(shape) != 4:
        raise ValueError(f"feature maps must be [N, C, h, w], got shape {shape}")
    for m in maps[1:]:
        if tuple(m.shape) != shape:
            raise ValueError(f"all feature maps must have the same shape; got {shape} and {tuple(m.shape)}")
    if C is not None and shape[1] != C:
        raise ValueError(f"feature maps have {shape[1]} channels, the head expects {C}")


def reference_head(maps, model: MVDNet, recipe: str | None = None) -> torch.Tensor:
    """The unfused head, built from the model's own modules (the reference for every fused path).

    ``maps``: the recipe's feature maps, ``model.feature_maps(x, recipe)`` order, each
    ``[N, C, h, w]``. Computes in the dtype of the head's parameters (fp32 normally) with
    ``adaptive_avg_pool2d -> bn_neck [-> cat | -> bottleneck] -> F.normalize`` (no autograd).
    Returns ``[N, D]`` float32 (float64 for a float64 model). The model must be in eval mode.
    """
    recipe = check_recipe(recipe or model.recipe)
    names = tuple(model.recipe_observations(recipe))
    _check_maps(maps, len(names))
    heads = [model.branches[OBSERVATION_SOURCES[n][0]].head for n in names]
    if any(h.training for h in heads):
        raise ValueError("reference_head needs an eval-mode model: call model.eval()")
    dtype = heads[0].bn_neck.running_mean.dtype
    with torch.no_grad():
        feats = [h.bn_neck(F.adaptive_avg_pool2d(m.to(dtype), 1).flatten(1)) for h, m in zip(heads, maps)]
        feat = torch.cat(feats, dim=1) if recipe == "full" else feats[0]
        if recipe == "z":
            feat = heads[0].bottleneck(feat)
        out = F.normalize(feat, dim=1)
    return out if dtype == torch.float64 else out.float()


def folded_head_torch(maps, folded: FoldedHead) -> torch.Tensor:
    """The kernels' math on the folded parameters, in plain torch (no Triton).

    Computes in float64 when ``folded`` is float64, else float32 (fp16 parameters are
    upcast, as the kernels do). Returns ``[N, D]`` float32 (float64 for float64 params).
    Used to check folding exactly, and as the eager body of the ONNX export op.
    """
    _check_maps(maps, folded.num_maps, folded.feat_dim)
    return folded_math(maps, folded.recipe, folded.dims, folded.params)


def folded_math(maps, recipe: str, dims: tuple[int, ...], params: torch.Tensor) -> torch.Tensor:
    """``folded_head_torch`` without argument checks (also traced by the ONNX exporter)."""
    cd = torch.float64 if params.dtype == torch.float64 else torch.float32
    layout = param_layout(recipe, len(maps), tuple(dims))

    def seg(name: str) -> torch.Tensor:
        return _view(params, layout[name]).to(cd)

    pooled = [m.to(cd).mean(dim=(2, 3)) for m in maps]
    if recipe == "z":
        h1 = torch.relu(pooled[0] @ seg("w1").t() + seg("b1"))
        h2 = torch.relu(h1 @ seg("w2").t() + seg("b2"))
        feat = h2 @ seg("w3").t() + seg("b3")
    else:
        scale, shift = seg("scale"), seg("shift")
        feat = torch.cat([p * scale[i] + shift[i] for i, p in enumerate(pooled)], dim=1)
    out = F.normalize(feat, dim=1)
    return out if cd == torch.float64 else out.float()


__all__ = [
    "PARAM_ALIGN",
    "RECIPES",
    "FoldedHead",
    "bn_scale_shift",
    "fold_head",
    "folded_head_torch",
    "folded_math",
    "param_layout",
    "reference_head",
]
