"""Check the Triton head kernels against the torch reference on fresh random inputs.

Runs on the CPU through the Triton interpreter, or on CUDA::

    TRITON_INTERPRET=1 python -m mvd_edge.kernels.interp_check            # fast suite, CPU
    python -m mvd_edge.kernels.interp_check --device cuda --suite slow    # on a GPU

Every case builds a fresh MVDNet head with random weights *and* random BatchNorm running
statistics / affine parameters, random non-negative feature maps, poisons the output
buffer with NaN, runs ``fused_head`` and compares with ``reference_head`` (built from the
unfused modules). Prints one JSON list of results (``--json``) or a table. The pytest
suite (``tests/test_kernels.py``) runs this module in a subprocess so that
``TRITON_INTERPRET`` never leaks into other tests.

Nothing here imports Triton until ``run_cases`` is called.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from mvd_edge.model.net import BranchHead, MVDNet

# max |fused - reference| on unit-norm embeddings, by dtype of the folded parameters
TOLERANCE = {"float32": 1e-5, "float16": 2e-3}
# and the worst per-row cosine similarity for fp16 parameters
FP16_MIN_COSINE = 0.9999
SINGLE = {"full": "row", "shared": "row", "z": "fused"}


@dataclass(frozen=True)
class Case:
    recipe: str
    dtype: str          # folded-parameter dtype (and map dtype unless map_dtype is set)
    n: int
    hw: tuple[int, int]
    mode: str
    c: int = 72
    dims: tuple[int, int, int] = (40, 24, 20)
    map_dtype: str | None = None
    config: tuple[tuple[str, int], ...] = field(default=())
    seed: int = 0

    @property
    def id(self) -> str:
        cfg = "-cfg" if self.config else ""
        md = f"-maps_{self.map_dtype}" if self.map_dtype else ""
        return f"{self.recipe}-{self.dtype}{md}-N{self.n}-{self.hw[0]}x{self.hw[1]}-{self.mode}-C{self.c}{cfg}"


def fast_cases() -> list[Case]:
    """The default suite: every recipe x {fp32, fp16} x N in {1, 3, 33} x h*w in {16x8, 18x9, 3x2}
    (one h*w per N, rotating) x {single-launch, split}, plus N=130 and explicit small-block
    configs (multi-iteration loops), plus bf16 maps."""
    cases: list[Case] = []
    seed = 0
    for recipe in ("full", "shared", "z"):
        for dtype in ("float32", "float16"):
            for n, hw in ((1, (16, 8)), (3, (18, 9)), (33, (3, 2))):
                for mode in (SINGLE[recipe], "split"):
                    seed += 1
                    cases.append(Case(recipe, dtype, n, hw, mode, seed=seed))
        for mode in (SINGLE[recipe], "split"):
            seed += 1
            cases.append(Case(recipe, "float16", 130, (4, 2), mode, c=40, seed=seed))
    small = {"row": (("BLOCK_C", 16), ("BLOCK_HW", 32), ("BLOCK_D", 64)),
             "fused": (("BLOCK_M", 16), ("BLOCK_K", 16), ("BLOCK_HW", 16), ("BLOCK_N2", 16))}
    for recipe in ("full", "z"):
        seed += 1
        cases.append(Case(recipe, "float16", 5, (18, 9), SINGLE[recipe], config=small[SINGLE[recipe]], seed=seed))
    cases.append(Case("shared", "float32", 4, (16, 8), "row", map_dtype="bfloat16", seed=seed + 1))
    for mode in ("fused", "split"):  # MLP dims below the 16-wide tl.dot minimum are padded
        cases.append(Case("z", "float16", 9, (16, 8), mode, c=20, dims=(12, 10, 8), seed=seed + 2))
    return cases


def slow_cases() -> list[Case]:
    """Wider heads (C=512, dims 250-125-128) at both backbone sizes and a large batch."""
    cases = []
    seed = 1000
    for recipe in ("full", "shared", "z"):
        for dtype in ("float32", "float16"):
            for n, hw in ((17, (16, 8)), (64, (18, 9))):
                for mode in (SINGLE[recipe], "split"):
                    seed += 1
                    cases.append(Case(recipe, dtype, n, hw, mode, c=512, dims=(250, 125, 128), seed=seed))
    return cases


def randomize_head_model(model: MVDNet, generator: torch.Generator) -> MVDNet:
    """Random Linear weights and random BN running stats / affine params in every head."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
            m.eps = float(torch.rand(1, generator=generator)) * 1e-3 + 1e-5
        elif isinstance(m, torch.nn.Linear):
            fan_in = m.in_features
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=generator) / fan_in ** 0.5)
            if m.bias is not None:
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
    return model


def head_model(c: int, dims: tuple[int, int, int], seed: int) -> MVDNet:
    """An eval-mode tiny MVDNet whose three heads take ``c`` channels (trunks unused)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MVDNet(num_classes=5, backbone="tiny", bottleneck_dims=dims)
    for branch in model.branches.values():
        branch.head = BranchHead(c, 5, tuple(dims))
    return randomize_head_model(model, g).eval()


def run_case(case: Case, device: str = "cpu") -> dict:
    from mvd_edge.kernels.fold import fold_head, reference_head
    from mvd_edge.kernels.fused_head import fused_head, launch_count, resolve_mode

    dtype = getattr(torch, case.dtype)
    map_dtype = getattr(torch, case.map_dtype or case.dtype)
    model = head_model(case.c, case.dims, case.seed)
    g = torch.Generator().manual_seed(case.seed + 7)
    maps = []
    for _ in model.recipe_observations(case.recipe):
        x = torch.randn(case.n, case.c, *case.hw, generator=g) * (torch.rand(1, case.c, 1, 1, generator=g) + 0.2)
        maps.append(x.relu().to(map_dtype))
    ref = reference_head(maps, model, case.recipe)
    folded = fold_head(model, case.recipe, dtype=dtype, device=device)
    dev_maps = [m.to(device) for m in maps]
    out = torch.full((case.n, folded.out_dim), float("nan"), dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    fused_head(dev_maps, folded, out=out, mode=case.mode, config=dict(case.config) if case.config else None)
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = out.cpu()
    finite = bool(torch.isfinite(out).all())
    err = float((out - ref).abs().max()) if finite else float("inf")
    cos = float(torch.nn.functional.cosine_similarity(out, ref, dim=1).min()) if finite else -1.0
    norm_err = float((out.norm(dim=1) - 1).abs().max()) if finite else float("inf")
    resolved = resolve_mode(folded, case.n, torch.device(device), case.mode)
    tol = TOLERANCE[case.dtype]
    ok = finite and err <= tol and (case.dtype != "float16" or cos >= FP16_MIN_COSINE)
    return {"id": case.id, "case": asdict(case), "max_abs_err": err, "min_cosine": cos, "max_norm_err": norm_err,
            "finite": finite, "tolerance": tol, "ok": ok, "seconds": seconds,
            "launches": launch_count(case.recipe, resolved)}


def run_cases(cases: list[Case], device: str = "cpu") -> list[dict]:
    return [run_case(c, device) for c in cases]


def embed_checks(device: str = "cpu") -> list[dict]:
    """``make_fused_embed`` (trunks + fused head) against ``model.embed`` on a tiny MVDNet, per recipe."""
    from mvd_edge.kernels.fused_head import make_fused_embed

    results = []
    for i, recipe in enumerate(("full", "shared", "z")):
        model = randomize_head_model(MVDNet(num_classes=5, backbone="tiny"), torch.Generator().manual_seed(50 + i))
        model = model.eval().to(device)
        x = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(60 + i)).to(device)
        embed = make_fused_embed(model, recipe, dtype=torch.float32)
        t0 = time.perf_counter()
        out = embed(x).cpu()
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            ref = model.embed(x, recipe).float().cpu()
        finite = bool(torch.isfinite(out).all())
        err = float((out - ref).abs().max()) if finite else float("inf")
        tol = TOLERANCE["float32"]
        results.append({"id": f"embed-{recipe}", "case": {"recipe": recipe}, "max_abs_err": err,
                        "min_cosine": float(torch.nn.functional.cosine_similarity(out, ref, dim=1).min()),
                        "max_norm_err": float((out.norm(dim=1) - 1).abs().max()), "finite": finite,
                        "tolerance": tol, "ok": finite and err <= tol and tuple(out.shape) == tuple(ref.shape),
                        "seconds": seconds, "launches": None})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=("fast", "slow", "all"), default="fast")
    ap.add_argument("--device", default="cpu", help="cpu (needs TRITON_INTERPRET=1) or cuda")
    ap.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    ap.add_argument("--only", default=None, help="run only case ids containing this text")
    args = ap.parse_args(argv)
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if args.device == "cpu" and not interp:
        print("the CPU check needs the Triton interpreter: run with TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    cases = {"fast": fast_cases(), "slow": slow_cases(), "all": fast_cases() + slow_cases()}[args.suite]
    if args.only:
        cases = [c for c in cases if args.only in c.id]
    results = run_cases(cases, args.device)
    if args.suite in ("fast", "all") and not args.only:
        results += embed_checks(args.device)
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"{'ok ' if r['ok'] else 'BAD'} {r['id']:<48} err={r['max_abs_err']:.2e} (tol {r['tolerance']:.0e}) "
                  f"cos>={r['min_cosine']:.6f} launches={r['launches']} {r['seconds']:.2f}s")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
