"""The fused embedding head in Triton: pooling, BN neck, bottleneck MLP, concat, L2 norm.

Input: the recipe's backbone feature maps, each ``[N, C, h, w]`` (fp16, bf16 or fp32,
NCHW; other layouts are made contiguous first), and a ``FoldedHead`` (``fold.py``).
Output: ``[N, D]`` float32, L2-normalised (``x / max(||x||, 1e-12)``, as ``F.normalize``).
All accumulation is fp32; fp16 parameters feed ``tl.dot`` as fp16 with fp32 accumulators.

Launches per call
-----------------
=========  ==============  =================================================================
recipe     mode            kernels
=========  ==============  =================================================================
full       ``row``  (1)    ``_bn_head_row_kernel``: one program per sample row: pools every
shared                     channel of every map, applies scale/shift, writes the raw row,
                           then (after a CTA barrier) rescales it by 1/||row||.
full       ``split`` (2)   ``_bn_head_split_kernel`` (grid N x channel blocks: pool, scale/
shared                     shift, per-block sum of squares) + ``_l2_finish_kernel``.
z          ``fused`` (1)   ``_z_head_kernel``: one program per 16 rows: pool -> GEMM1 (BN
                           neck and BN1 folded in) -> ReLU -> GEMM2 (BN2 folded) -> ReLU ->
                           GEMM3 -> L2 norm, h1 kept in registers, h2 streamed into GEMM3.
z          ``split`` (2)   ``_z_l1_kernel`` (grid row blocks x d1 blocks: pool + GEMM1 +
                           ReLU -> h1 [N, d1] fp32) + ``_z_l23_kernel`` (GEMM2 + ReLU +
                           GEMM3 + L2 norm).
=========  ==============  =================================================================

The single-launch kernels are what the math allows and what the TensorRT plugin runs
(a plugin's AOT implementation is one kernel). Their weakness is parallelism: ``row``
runs N programs and ``fused`` N/16, so a small batch leaves most SMs idle. ``mode="auto"``
therefore picks the two-launch ``split`` variants on CUDA when the single-launch grid
would be smaller than the GPU (thresholds: ``ROW_MIN_PROGRAMS_PER_SM``,
``Z_MIN_PROGRAMS_PER_SM``; ``benchmarks/fused_head.py`` measures both so they can be
tuned). Under the interpreter ``auto`` means the single-launch kernels.

Block sizes come from ``triton.autotune`` on CUDA (small config lists, keyed on the
shapes); under ``TRITON_INTERPRET=1`` a fixed config is used (autotuning in the
interpreter would only cost time). ``TRITON_INTERPRET`` must be set before this module
is imported (``triton.jit`` reads it when the kernels are defined).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from mvd_edge.core.spec import check_recipe
from mvd_edge.kernels.fold import PARAM_ALIGN, FoldedHead, _check_maps, fold_head, reference_head
from mvd_edge.model.net import MVDNet

INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0").strip().lower() not in ("", "0", "false", "no")

MAP_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
PARAM_DTYPES = (torch.float16, torch.float32)
MODES = ("auto", "row", "split", "fused")
Z_BLOCK_M = 16            # rows per program in the z kernels (tl.dot needs >= 16)
SPLIT_BLOCK_C = 32        # channels per program in the split full/shared kernel (fixed: sizes the partials)
MAX_Z_PAD = 1024          # next_pow2(d1) and next_pow2(d3) the fused z kernel keeps in registers
ROW_MIN_PROGRAMS_PER_SM = 1.0   # auto: use `row` when N >= this * SMs, else `split`
Z_MIN_PROGRAMS_PER_SM = 0.5     # auto: use `fused` when ceil(N/16) >= this * SMs, else `split`
if PARAM_ALIGN != 64:  # _seg() below hard-codes the segment alignment
    raise ImportError(f"kernels expect PARAM_ALIGN == 64, fold.py has {PARAM_ALIGN}")


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _seg(n):
    """Length ``n`` rounded up to the parameter segment alignment (64, = PARAM_ALIGN)."""
    return tl.cdiv(n, 64) * 64


@triton.jit
def _pool_sum(x_row, offs_c, c_mask, HW, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Spatial sums ``[BLOCK_C]`` fp32 of channels ``offs_c`` of one NCHW sample at ``x_row``."""
    offs_p = tl.arange(0, BLOCK_HW)
    acc = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_HW):
        p = p0 + offs_p
        ptrs = x_row + offs_c[:, None] * HW + p[None, :]
        m = c_mask[:, None] & (p < HW)[None, :]
        acc += tl.load(ptrs, mask=m, other=0.0).to(tl.float32)
    return tl.sum(acc, axis=1)


@triton.jit
def _bn_head_row_kernel(x0, x1, x2, x3, params, N, C, HW, out,
                        NUM_MAPS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    """full/shared, one program per row n: out[n] = normalize(cat_m(GAP(x_m[n]) * scale_m + shift_m))."""
    n = tl.program_id(0).to(tl.int64)
    inv_hw = 1.0 / HW.to(tl.float32)
    D = NUM_MAPS * C
    shift_off = _seg(NUM_MAPS * C)
    x_off = n * C * HW
    out_row = out + n * D
    offs = tl.arange(0, BLOCK_C)
    sq = tl.zeros([BLOCK_C], dtype=tl.float32)
    for m in tl.static_range(NUM_MAPS):
        if m == 0:
            xp = x0
        elif m == 1:
            xp = x1
        elif m == 2:
            xp = x2
        else:
            xp = x3
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + offs
            cm = offs_c < C
            s = _pool_sum(xp + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
            a = tl.load(params + m * C + offs_c, mask=cm, other=0.0).to(tl.float32)
            b = tl.load(params + shift_off + m * C + offs_c, mask=cm, other=0.0).to(tl.float32)
            v = tl.where(cm, s * inv_hw * a + b, 0.0)
            sq += v * v
            tl.store(out_row + m * C + offs_c, v, mask=cm)
    inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(sq, axis=0)), 1e-12)
    # the raw row was written by all threads of this program; make it visible to all of them
    tl.debug_barrier()
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        od = d0 + offs_d
        dm = od < D
        v = tl.load(out_row + od, mask=dm, other=0.0, cache_modifier=".cg")
        tl.store(out_row + od, v * inv, mask=dm)


@triton.jit
def _bn_head_split_kernel(x0, x1, x2, x3, params, N, C, HW, raw, partial,
                          NUM_MAPS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """full/shared, grid (N, NUM_MAPS * cdiv(C, BLOCK_C)): raw[n, block] and its sum of squares."""
    n = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1)
    ncb = tl.cdiv(C, BLOCK_C)
    m = j // ncb
    offs_c = (j % ncb) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = offs_c < C
    x_off = n * C * HW
    if NUM_MAPS == 1:
        s = _pool_sum(x0 + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
    else:
        if m == 0:
            s = _pool_sum(x0 + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
        elif m == 1:
            s = _pool_sum(x1 + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
        elif m == 2:
            s = _pool_sum(x2 + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
        else:
            s = _pool_sum(x3 + x_off, offs_c, cm, HW, BLOCK_C, BLOCK_HW)
    inv_hw = 1.0 / HW.to(tl.float32)
    a = tl.load(params + m * C + offs_c, mask=cm, other=0.0).to(tl.float32)
    b = tl.load(params + _seg(NUM_MAPS * C) + m * C + offs_c, mask=cm, other=0.0).to(tl.float32)
    v = tl.where(cm, s * inv_hw * a + b, 0.0)
    tl.store(raw + n * (NUM_MAPS * C) + m * C + offs_c, v, mask=cm)
    tl.store(partial + n * (NUM_MAPS * ncb) + j, tl.sum(v * v, axis=0))


@triton.jit
def _l2_finish_kernel(raw, partial, out, D, NP, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """grid (N, cdiv(D, BLOCK_D)): out[n, blk] = raw[n, blk] / max(sqrt(sum(partial[n, :NP])), eps)."""
    n = tl.program_id(0).to(tl.int64)
    offs_p = tl.arange(0, BLOCK_P)
    ss = tl.zeros([BLOCK_P], dtype=tl.float32)
    for p0 in range(0, NP, BLOCK_P):
        p = p0 + offs_p
        ss += tl.load(partial + n * NP + p, mask=p < NP, other=0.0)
    inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(ss, axis=0)), 1e-12)
    od = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dm = od < D
    v = tl.load(raw + n * D + od, mask=dm, other=0.0)
    tl.store(out + n * D + od, v * inv, mask=dm)


@triton.jit
def _pool_rows(x0, offs_m, m_mask, offs_k, k_mask, C, HW, inv_hw,
               BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Spatial means ``[BLOCK_M, BLOCK_K]`` fp32 of rows ``offs_m``, channels ``offs_k``."""
    x_rows = offs_m.to(tl.int64) * C * HW
    offs_p = tl.arange(0, BLOCK_HW)
    acc = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_HW):
        p = p0 + offs_p
        ptrs = x0 + x_rows[:, None, None] + offs_k[None, :, None] * HW + p[None, None, :]
        msk = m_mask[:, None, None] & k_mask[None, :, None] & (p < HW)[None, None, :]
        acc += tl.sum(tl.load(ptrs, mask=msk, other=0.0).to(tl.float32), axis=2)
    return acc * inv_hw


@triton.jit
def _mma(a, b, acc, IEEE: tl.constexpr):
    if IEEE:
        return tl.dot(a, b, acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc)


@triton.jit
def _z_head_kernel(x0, x1, x2, x3, params, N, C, HW, D1, D2, D3, out,
                   BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_HW: tl.constexpr,
                   BLOCK_N2: tl.constexpr, D1P: tl.constexpr, D3P: tl.constexpr, IEEE: tl.constexpr):
    """z, one program per BLOCK_M rows; x1..x3 are unused (uniform plugin signature)."""
    pid = tl.program_id(0)
    wdt = params.dtype.element_ty
    inv_hw = 1.0 / HW.to(tl.float32)
    o_b1 = _seg(D1 * C)
    o_w2 = o_b1 + _seg(D1)
    o_b2 = o_w2 + _seg(D2 * D1)
    o_w3 = o_b2 + _seg(D2)
    o_b3 = o_w3 + _seg(D3 * D2)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mm = offs_m < N
    offs_d1 = tl.arange(0, D1P)
    d1m = offs_d1 < D1
    # GEMM1 over channels, pooling each channel block once
    h1 = tl.zeros([BLOCK_M, D1P], dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        km = offs_k < C
        a = _pool_rows(x0, offs_m, mm, offs_k, km, C, HW, inv_hw, BLOCK_M, BLOCK_K, BLOCK_HW).to(wdt)
        w = tl.load(params + offs_d1[None, :] * C + offs_k[:, None], mask=km[:, None] & d1m[None, :], other=0.0)
        h1 = _mma(a, w, h1, IEEE)
    b1 = tl.load(params + o_b1 + offs_d1, mask=d1m, other=0.0).to(tl.float32)
    h1 = tl.maximum(h1 + b1[None, :], 0.0).to(wdt)
    # GEMM2 in column blocks of d2; each block of h2 is a K-block of GEMM3
    offs_d3 = tl.arange(0, D3P)
    d3m = offs_d3 < D3
    zacc = tl.zeros([BLOCK_M, D3P], dtype=tl.float32)
    for j0 in range(0, D2, BLOCK_N2):
        offs_j = j0 + tl.arange(0, BLOCK_N2)
        jm = offs_j < D2
        w2 = tl.load(params + o_w2 + offs_j[None, :] * D1 + offs_d1[:, None], mask=d1m[:, None] & jm[None, :],
                     other=0.0)
        h2 = _mma(h1, w2, tl.zeros([BLOCK_M, BLOCK_N2], dtype=tl.float32), IEEE)
        b2 = tl.load(params + o_b2 + offs_j, mask=jm, other=0.0).to(tl.float32)
        h2 = tl.maximum(h2 + b2[None, :], 0.0).to(wdt)
        w3 = tl.load(params + o_w3 + offs_d3[None, :] * D2 + offs_j[:, None], mask=jm[:, None] & d3m[None, :],
                     other=0.0)
        zacc = _mma(h2, w3, zacc, IEEE)
    b3 = tl.load(params + o_b3 + offs_d3, mask=d3m, other=0.0).to(tl.float32)
    z = tl.where(d3m[None, :], zacc + b3[None, :], 0.0)
    inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(z * z, axis=1)), 1e-12)
    optr = out + offs_m.to(tl.int64)[:, None] * D3 + offs_d3[None, :]
    tl.store(optr, z * inv[:, None], mask=mm[:, None] & d3m[None, :])


@triton.jit
def _z_l1_kernel(x0, params, N, C, HW, D1, h1,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_HW: tl.constexpr,
                 IEEE: tl.constexpr):
    """z split, launch 1: h1[rows, cols] = relu(mean_pool(x)[rows] @ W1''[cols].T + b1'') (fp32)."""
    pid = tl.program_id(0)
    nbn = tl.cdiv(D1, BLOCK_N)
    pid_m = pid // nbn          # column blocks of one row block are adjacent: the maps stay in L2
    pid_n = pid % nbn
    wdt = params.dtype.element_ty
    inv_hw = 1.0 / HW.to(tl.float32)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mm = offs_m < N
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = offs_n < D1
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        km = offs_k < C
        a = _pool_rows(x0, offs_m, mm, offs_k, km, C, HW, inv_hw, BLOCK_M, BLOCK_K, BLOCK_HW).to(wdt)
        w = tl.load(params + offs_n[None, :] * C + offs_k[:, None], mask=km[:, None] & nm[None, :], other=0.0)
        acc = _mma(a, w, acc, IEEE)
    b1 = tl.load(params + _seg(D1 * C) + offs_n, mask=nm, other=0.0).to(tl.float32)
    h = tl.maximum(acc + b1[None, :], 0.0)
    tl.store(h1 + offs_m.to(tl.int64)[:, None] * D1 + offs_n[None, :], h, mask=mm[:, None] & nm[None, :])


@triton.jit
def _z_l23_kernel(h1, params, N, C, D1, D2, D3, out,
                  BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N2: tl.constexpr, D3P: tl.constexpr,
                  IEEE: tl.constexpr):
    """z split, launch 2: out[rows] = normalize(relu(h1 @ W2'.T + b2') @ W3.T + b3)."""
    pid = tl.program_id(0)
    wdt = params.dtype.element_ty
    o_b1 = _seg(D1 * C)
    o_w2 = o_b1 + _seg(D1)
    o_b2 = o_w2 + _seg(D2 * D1)
    o_w3 = o_b2 + _seg(D2)
    o_b3 = o_w3 + _seg(D3 * D2)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mm = offs_m < N
    rows = offs_m.to(tl.int64)
    offs_d3 = tl.arange(0, D3P)
    d3m = offs_d3 < D3
    zacc = tl.zeros([BLOCK_M, D3P], dtype=tl.float32)
    for j0 in range(0, D2, BLOCK_N2):
        offs_j = j0 + tl.arange(0, BLOCK_N2)
        jm = offs_j < D2
        acc2 = tl.zeros([BLOCK_M, BLOCK_N2], dtype=tl.float32)
        for k0 in range(0, D1, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            km = offs_k < D1
            a = tl.load(h1 + rows[:, None] * D1 + offs_k[None, :], mask=mm[:, None] & km[None, :], other=0.0).to(wdt)
            w2 = tl.load(params + o_w2 + offs_j[None, :] * D1 + offs_k[:, None], mask=km[:, None] & jm[None, :],
                         other=0.0)
            acc2 = _mma(a, w2, acc2, IEEE)
        b2 = tl.load(params + o_b2 + offs_j, mask=jm, other=0.0).to(tl.float32)
        h2 = tl.maximum(acc2 + b2[None, :], 0.0).to(wdt)
        w3 = tl.load(params + o_w3 + offs_d3[None, :] * D2 + offs_j[:, None], mask=jm[:, None] & d3m[None, :],
                     other=0.0)
        zacc = _mma(h2, w3, zacc, IEEE)
    b3 = tl.load(params + o_b3 + offs_d3, mask=d3m, other=0.0).to(tl.float32)
    z = tl.where(d3m[None, :], zacc + b3[None, :], 0.0)
    inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(z * z, axis=1)), 1e-12)
    tl.store(out + rows[:, None] * D3 + offs_d3[None, :], z * inv[:, None], mask=mm[:, None] & d3m[None, :])


# ----------------------------------------------------------------------------- launch configs


def _cfg(num_warps: int, num_stages: int = 2, **meta) -> triton.Config:
    return triton.Config(meta, num_warps=num_warps, num_stages=num_stages)


class _Launcher:
    """A kernel with a small autotune list on CUDA and one fixed config under the interpreter.

    ``launch(grid_fn, *args, config=None, **kwargs)``: ``grid_fn(meta) -> grid``. An
    explicit ``config`` (dict of constexprs, optionally ``num_warps``/``num_stages``)
    bypasses autotuning (used by tests and the benchmark).
    """

    def __init__(self, fn, configs: list[triton.Config], key: list[str], fixed: dict):
        self.fn = fn
        self.configs = configs
        self.fixed = dict(fixed)
        self._tuned = None if INTERPRET else triton.autotune(configs=configs, key=key)(fn)

    def default_config(self) -> dict:
        """First autotune entry as a plain dict (the AOT/TensorRT path has no autotuner)."""
        c = self.configs[0]
        return {**c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages}

    def launch(self, grid_fn: Callable[[dict], tuple], *args, config: dict | None = None, **kwargs) -> None:
        if self._tuned is not None and config is None:
            self._tuned[grid_fn](*args, **kwargs)
            return
        cfg = dict(self.fixed if config is None else config)
        opts = {k: cfg.pop(k) for k in ("num_warps", "num_stages") if k in cfg}
        if INTERPRET:
            opts = {}
        self.fn[grid_fn(cfg)](*args, **kwargs, **cfg, **opts)


ROW = _Launcher(
    _bn_head_row_kernel,
    [_cfg(4, BLOCK_C=32, BLOCK_HW=64, BLOCK_D=1024), _cfg(8, BLOCK_C=32, BLOCK_HW=128, BLOCK_D=1024),
     _cfg(4, BLOCK_C=16, BLOCK_HW=128, BLOCK_D=1024), _cfg(8, BLOCK_C=64, BLOCK_HW=32, BLOCK_D=2048)],
    key=["C", "HW", "NUM_MAPS"],
    fixed=dict(BLOCK_C=64, BLOCK_HW=64, BLOCK_D=256),
)
SPLIT = _Launcher(
    _bn_head_split_kernel,
    [_cfg(4, BLOCK_C=SPLIT_BLOCK_C, BLOCK_HW=64), _cfg(4, BLOCK_C=SPLIT_BLOCK_C, BLOCK_HW=128),
     _cfg(8, BLOCK_C=SPLIT_BLOCK_C, BLOCK_HW=128)],
    key=["C", "HW", "NUM_MAPS"],
    fixed=dict(BLOCK_C=SPLIT_BLOCK_C, BLOCK_HW=64),
)
FINISH_CONFIG = dict(BLOCK_P=128, BLOCK_D=1024, num_warps=4)
# z configs: checked with ptxas for sm_90 at C=2048, dims (1000, 500, 512), fp16: no
# register spills (4-warp variants of the fused kernel spill). The first entry is the
# TensorRT (AOT) default: 82 KB shared memory for fp16 parameters.
Z_FUSED = _Launcher(
    _z_head_kernel,
    [_cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_K=16, BLOCK_HW=16, BLOCK_N2=16),
     _cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_K=16, BLOCK_HW=16, BLOCK_N2=32),
     _cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_K=16, BLOCK_HW=32, BLOCK_N2=16)],
    key=["C", "HW", "D1", "D2", "D3"],
    fixed=dict(BLOCK_M=Z_BLOCK_M, BLOCK_K=32, BLOCK_HW=64, BLOCK_N2=32),
)
Z_FUSED_FP32_AOT = dict(BLOCK_M=Z_BLOCK_M, BLOCK_K=16, BLOCK_HW=16, BLOCK_N2=16, num_warps=8, num_stages=1)
Z_L1 = _Launcher(
    _z_l1_kernel,
    [_cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_N=128, BLOCK_K=16, BLOCK_HW=16),
     _cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_N=64, BLOCK_K=16, BLOCK_HW=32),
     _cfg(4, BLOCK_M=Z_BLOCK_M, BLOCK_N=64, BLOCK_K=16, BLOCK_HW=16)],
    key=["C", "HW", "D1"],
    fixed=dict(BLOCK_M=Z_BLOCK_M, BLOCK_N=32, BLOCK_K=32, BLOCK_HW=64),
)
Z_L23 = _Launcher(
    _z_l23_kernel,
    [_cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_K=64, BLOCK_N2=16), _cfg(8, BLOCK_M=Z_BLOCK_M, BLOCK_K=32, BLOCK_N2=32)],
    key=["D1", "D2", "D3"],
    fixed=dict(BLOCK_M=Z_BLOCK_M, BLOCK_K=64, BLOCK_N2=32),
)


# ----------------------------------------------------------------------------- host side


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _pad(d: int) -> int:
    """Register width of an MLP dim in the z kernels: next power of two, at least 16 (tl.dot minimum)."""
    return max(16, _next_pow2(d))


def _check_device(t: torch.Tensor) -> None:
    if t.is_cuda or (INTERPRET and t.device.type == "cpu"):
        return
    raise RuntimeError(
        f"the fused head runs on CUDA tensors (got {t.device}); for the CPU Triton interpreter set "
        "TRITON_INTERPRET=1 in the environment before mvd_edge.kernels.fused_head is imported"
    )


@functools.lru_cache(maxsize=None)
def _sm_count_of(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _sm_count(device: torch.device) -> int:
    return _sm_count_of(device.index if device.index is not None else torch.cuda.current_device())


def launch_count(recipe: str, mode: str) -> int:
    """Kernel launches per ``fused_head`` call for a resolved mode (see module docstring)."""
    return 1 if mode in ("row", "fused") else 2


def resolve_mode(folded: FoldedHead, n: int, device: torch.device, mode: str = "auto") -> str:
    """The mode ``fused_head`` will run: ``row``/``split`` (full, shared) or ``fused``/``split`` (z)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    single = "fused" if folded.recipe == "z" else "row"
    if mode == "auto":
        if folded.recipe == "z" and not z_fused_supported(folded):
            return "split"
        if device.type != "cuda":
            return single
        sms = _sm_count(device)
        if folded.recipe == "z":
            return single if triton.cdiv(n, Z_BLOCK_M) >= Z_MIN_PROGRAMS_PER_SM * sms else "split"
        return single if n >= ROW_MIN_PROGRAMS_PER_SM * sms else "split"
    if mode in ("row", "fused"):
        if mode != single:
            raise ValueError(f"mode {mode!r} does not apply to recipe {folded.recipe!r}; use {single!r} or 'split'")
        if folded.recipe == "z" and not z_fused_supported(folded):
            raise ValueError(
                f"the single-launch z kernel keeps next_pow2(d1) and next_pow2(d3) <= {MAX_Z_PAD} in registers; "
                f"dims {folded.dims} are too wide: use mode='split'"
            )
    return mode


def z_fused_supported(folded: FoldedHead) -> bool:
    _, d1, _, d3 = folded.dims
    return _next_pow2(d1) <= MAX_Z_PAD and _next_pow2(d3) <= MAX_Z_PAD


def fused_head(maps: Sequence[torch.Tensor], folded: FoldedHead, *, out: torch.Tensor | None = None,
               mode: str = "auto", config: dict | None = None) -> torch.Tensor:
    """Run the fused head: ``maps`` (the recipe's ``[N, C, h, w]`` feature maps, in
    ``model.feature_maps`` order) -> ``[N, D]`` float32, L2-normalised.

    ``folded``: from ``fold_head`` (fp16 or fp32 params, on the maps' device).
    ``out``: optional preallocated ``[N, D]`` float32 contiguous output.
    ``mode``: ``auto`` | ``row`` (full/shared, 1 launch) | ``fused`` (z, 1 launch) |
    ``split`` (2 launches, more parallel for small N). ``config``: explicit block sizes
    for the (first) kernel instead of autotuning (tests, benchmarks).
    Runs on CUDA, or on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    if folded.dtype not in PARAM_DTYPES:
        raise ValueError(f"the kernels take fp16 or fp32 folded parameters, got {folded.dtype}")
    maps = list(maps)
    _check_maps(maps, folded.num_maps, folded.feat_dim)
    x = maps[0]
    _check_device(x)
    for m in maps:
        if m.dtype not in MAP_DTYPES:
            raise ValueError(f"feature maps must be one of {MAP_DTYPES}, got {m.dtype}")
        if m.device != x.device:
            raise ValueError(f"feature maps are on different devices: {x.device} and {m.device}")
    if folded.device != x.device:
        raise ValueError(f"folded parameters are on {folded.device}, feature maps on {x.device}: use folded.to(device)")
    maps = [m.contiguous() for m in maps]
    N, C, h, w = maps[0].shape
    HW = h * w
    D = folded.out_dim
    if out is None:
        out = torch.empty((N, D), dtype=torch.float32, device=x.device)
    elif out.shape != (N, D) or out.dtype != torch.float32 or not out.is_contiguous() or out.device != x.device:
        raise ValueError(f"out must be a contiguous float32 [{N}, {D}] tensor on {x.device}")
    if N == 0:
        return out
    if HW == 0:
        raise ValueError("feature maps have an empty spatial extent")
    resolved = resolve_mode(folded, N, x.device, mode)
    p = folded.params
    slots = (maps + [maps[0]] * 4)[:4]   # uniform 4-slot signature; unused slots repeat map 0
    ieee = folded.dtype == torch.float32
    if folded.recipe == "z":
        _, d1, d2, d3 = folded.dims
        if resolved == "fused":
            Z_FUSED.launch(lambda meta: (triton.cdiv(N, meta["BLOCK_M"]),), *slots, p, N, C, HW, d1, d2, d3, out,
                           D1P=_pad(d1), D3P=_pad(d3), IEEE=ieee, config=config)
        else:
            if _next_pow2(d3) > MAX_Z_PAD:
                raise ValueError(f"the z kernels keep next_pow2(d3) <= {MAX_Z_PAD} in registers; d3={d3} is too wide")
            h1 = torch.empty((N, d1), dtype=torch.float32, device=x.device)
            Z_L1.launch(lambda meta: (triton.cdiv(N, meta["BLOCK_M"]) * triton.cdiv(d1, meta["BLOCK_N"]),),
                        slots[0], p, N, C, HW, d1, h1, IEEE=ieee, config=config)
            Z_L23.launch(lambda meta: (triton.cdiv(N, meta["BLOCK_M"]),), h1, p, N, C, d1, d2, d3, out,
                         D3P=_pad(d3), IEEE=ieee)
        return out
    M = folded.num_maps
    if resolved == "row":
        ROW.launch(lambda meta: (N,), *slots, p, N, C, HW, out, NUM_MAPS=M, config=config)
        return out
    ncb = triton.cdiv(C, SPLIT_BLOCK_C)
    if config is not None and config.get("BLOCK_C", SPLIT_BLOCK_C) != SPLIT_BLOCK_C:
        raise ValueError(f"the split kernel's BLOCK_C is fixed at {SPLIT_BLOCK_C}")
    raw = torch.empty((N, D), dtype=torch.float32, device=x.device)
    partial = torch.empty((N, M * ncb), dtype=torch.float32, device=x.device)
    SPLIT.launch(lambda meta: (N, M * ncb), *slots, p, N, C, HW, raw, partial, NUM_MAPS=M, config=config)
    fin = dict(FINISH_CONFIG)
    if INTERPRET:
        fin.pop("num_warps")
    _l2_finish_kernel[(N, triton.cdiv(D, fin["BLOCK_D"]))](raw, partial, out, D, M * ncb, **fin)
    return out


# ----------------------------------------------------------------------------- torch backend helper


@dataclass
class FusedEmbedder:
    """``x [N, 3, H, W]`` (normalised RGB, see ``mvd_edge.core.preprocess``) -> ``[N, D]`` float32.

    Runs the recipe's trunks with ``model.feature_maps`` (optionally under autocast) and
    then the fused head. The folded parameters are a snapshot: rebuild the embedder
    after changing the model's weights.
    """

    model: MVDNet
    folded: FoldedHead
    mode: str = "auto"
    autocast_dtype: torch.dtype | None = None

    @property
    def recipe(self) -> str:
        return self.folded.recipe

    @property
    def dim(self) -> int:
        return self.folded.out_dim

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
                    return self.model.feature_maps(x, self.recipe)
            return self.model.feature_maps(x, self.recipe)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.feature_maps(x)
        with torch.inference_mode():
            return fused_head(maps, self.folded, mode=self.mode)


def make_fused_embed(model: MVDNet, recipe: str | None = None, dtype: torch.dtype = torch.float16,
                     device: torch.device | str | None = None, *, mode: str = "auto",
                     autocast: bool = False) -> FusedEmbedder:
    """Fold ``model``'s head for ``recipe`` and return a callable ``x -> embedding``.

    ``model`` must be in eval mode and on ``device`` (default: the model's device).
    ``dtype``: fp16 or fp32 head parameters. ``autocast=True`` runs the trunks under
    ``torch.autocast`` in ``dtype`` (fp16 feature maps: half the head's memory traffic).
    """
    recipe = check_recipe(recipe or model.recipe)
    if dtype not in PARAM_DTYPES:
        raise ValueError(f"dtype must be one of {PARAM_DTYPES}, got {dtype}")
    if device is None:
        device = next(model.parameters()).device
    folded = fold_head(model, recipe, dtype=dtype, device=device)
    return FusedEmbedder(model, folded, mode, dtype if autocast and dtype != torch.float32 else None)


# ----------------------------------------------------------------------------- AOT compilation (TensorRT)


_TRITON_DTYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


@dataclass(frozen=True)
class CompiledHead:
    """One ahead-of-time compiled single-launch head kernel (for the TensorRT plugin).

    Kernel parameters, in order: ``x0, x1, x2, x3, params`` (inputs), ``N, HW`` (int32
    extra arguments), ``out`` (output). ``C`` and the MLP dims are compiled in. Grid:
    ``(ceil(N / rows_per_program), 1, 1)``, block ``(num_warps * 32, 1, 1)``.
    """

    name: str
    ptx: str
    cubin: bytes
    num_warps: int
    shared: int
    rows_per_program: int
    arch: int
    config: dict


def _ptx_isa(ptx: str) -> int:
    """The ``.version`` directive of a PTX module as an int (8.8 -> 88)."""
    import re

    found = re.search(r"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.MULTILINE)
    if found is None:
        raise RuntimeError("Triton wrote PTX without a .version directive")
    return int(found.group(1)) * 10 + int(found.group(2))


def compile_head_kernel(recipe: str, num_maps: int, dims: Sequence[int], map_dtype: torch.dtype,
                        param_dtype: torch.dtype, arch: int, config: dict | None = None,
                        ptx_version: int | None = None) -> CompiledHead:
    """Compile the single-launch kernel of ``recipe`` for ``sm_<arch>`` with ``triton.compile``.

    Needs no GPU (Triton's bundled ``ptxas``). ``dims``: ``(C, D)`` or ``(C, d1, d2, d3)``.
    ``ptx_version`` (e.g. 84) caps the PTX ISA, for a driver older than Triton's ``ptxas``: the
    kernel is compiled with Triton's own PTX version, and again with ``ptx_version`` when Triton's
    is newer (a cap above what ``ptxas`` knows changes nothing).
    Raises if the kernel would need Triton global/profile scratch (TensorRT passes null).
    """
    from triton.backends.compiler import GPUTarget

    recipe = check_recipe(recipe)
    if INTERPRET:
        raise RuntimeError("compile_head_kernel cannot run with TRITON_INTERPRET=1 (kernels are interpreted)")
    if map_dtype not in _TRITON_DTYPE or param_dtype not in PARAM_DTYPES:
        raise ValueError(f"unsupported dtypes: maps {map_dtype}, params {param_dtype}")
    dims = tuple(int(d) for d in dims)
    mt, pt = _TRITON_DTYPE[map_dtype], _TRITON_DTYPE[param_dtype]
    if recipe == "z":
        launcher, fn = Z_FUSED, _z_head_kernel
        C, d1, d2, d3 = dims
        if _next_pow2(d1) > MAX_Z_PAD or _next_pow2(d3) > MAX_Z_PAD:
            raise ValueError(f"dims {dims} too wide for the single-launch z kernel (next_pow2 <= {MAX_Z_PAD})")
        consts = dict(C=C, D1=d1, D2=d2, D3=d3, D1P=_pad(d1), D3P=_pad(d3),
                      IEEE=param_dtype == torch.float32)
    else:
        launcher, fn = ROW, _bn_head_row_kernel
        C = dims[0]
        consts = dict(C=C, NUM_MAPS=int(num_maps))
    if config is None:
        config = Z_FUSED_FP32_AOT if recipe == "z" and param_dtype == torch.float32 else launcher.default_config()
    cfg = dict(config)
    num_warps = int(cfg.pop("num_warps", 4))
    num_stages = int(cfg.pop("num_stages", 2))
    consts.update(cfg)
    runtime = {"x0": f"*{mt}", "x1": f"*{mt}", "x2": f"*{mt}", "x3": f"*{mt}", "params": f"*{pt}",
               "N": "i32", "HW": "i32", "out": "*fp32"}
    missing = [a for a in fn.arg_names if a not in runtime and a not in consts]
    if missing:
        raise AssertionError(f"no value for kernel arguments {missing}")
    signature = {a: ("constexpr" if a in consts else runtime[a]) for a in fn.arg_names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names) if signature[a].startswith("*")}
    src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    target = GPUTarget("cuda", int(arch), 32)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    compiled = triton.compile(src, target=target, options=options)
    if ptx_version is not None and _ptx_isa(compiled.asm["ptx"]) > int(ptx_version):
        compiled = triton.compile(src, target=target, options={**options, "ptx_version": int(ptx_version)})
    md = compiled.metadata
    if getattr(md, "global_scratch_size", 0) or getattr(md, "profile_scratch_size", 0):
        raise RuntimeError(f"kernel {md.name} needs Triton scratch memory, which a TensorRT AOT plugin cannot provide")
    rows = consts.get("BLOCK_M", 1)
    return CompiledHead(md.name, compiled.asm["ptx"], compiled.asm.get("cubin", b""), md.num_warps, md.shared,
                        rows, int(arch), {**consts, "num_warps": num_warps, "num_stages": num_stages})


__all__ = [
    "INTERPRET",
    "MODES",
    "CompiledHead",
    "FusedEmbedder",
    "compile_head_kernel",
    "fused_head",
    "launch_count",
    "make_fused_embed",
    "reference_head",
    "resolve_mode",
    "z_fused_supported",
]
