#!/usr/bin/env python
"""Benchmark the fused Triton embedding head against torch eager and torch.compile.

For each recipe (full / shared / z) and batch size N, on fp16 feature maps
``[N, C, h, w]`` (default ResNet-50 at 256x128 with last stride 1: C=2048, 16x8):

* ``fused-auto``   : ``mvd_edge.kernels.fused_head.fused_head`` (mode picked by size)
* ``fused-single`` : the single-launch kernel (``row`` / ``fused``), as in the TRT plugin
* ``fused-split``  : the two-launch small-batch variant
* ``eager``        : ``reference_head`` (the unfused modules, fp16 parameters)
* ``compile``      : ``torch.compile(reference_head)``

Times are medians of CUDA-event timings after warm-up (microseconds). The memory-bound
floor is (feature-map bytes + folded-parameter bytes read once + output written once)
/ peak bandwidth (``--peak-gbps``, default 3350 GB/s = H100 SXM HBM3). Prints a table,
writes ``fused_head.json`` and (with matplotlib) ``fused_head.png`` to ``--out-dir``.
Needs a CUDA GPU; without one it exits with a message saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

DEFAULT_BATCHES = (1, 8, 32, 128, 512)
DEFAULT_RECIPES = ("full", "shared", "z")
NO_GPU_MESSAGE = (
    "benchmarks/fused_head.py needs a CUDA GPU: torch.cuda.is_available() is False on this machine. "
    "Run it on a GPU host (the kernels' correctness is checked on the CPU by "
    "`TRITON_INTERPRET=1 python -m mvd_edge.kernels.interp_check`)."
)


def parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected HxW like 16x8, got {text!r}") from exc
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"h and w must be positive, got {text!r}")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out-dir", type=Path, default=Path("bench_out/fused_head"), help="where JSON/PNG go")
    ap.add_argument("--batch", type=int, nargs="+", default=list(DEFAULT_BATCHES), help="batch sizes N")
    ap.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), choices=DEFAULT_RECIPES)
    ap.add_argument("--hw", type=parse_hw, default=(16, 8), help="feature map size h x w (18x9 for 288x144 input)")
    ap.add_argument("--channels", type=int, default=2048, help="C of the feature maps (2048 for ResNet-50)")
    ap.add_argument("--dims", type=int, nargs=3, default=[1000, 500, 512], help="bottleneck d1 d2 d3")
    ap.add_argument("--peak-gbps", type=float, default=3350.0, help="GPU peak memory bandwidth, GB/s")
    ap.add_argument("--warmup", type=int, default=25)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def head_bytes(recipe: str, n: int, c: int, hw: tuple[int, int], param_numel: int, out_dim: int,
               map_bytes: int = 2, param_bytes: int = 2) -> int:
    """Bytes a memory-bound head must move: maps and parameters read once, fp32 output written once."""
    maps = 4 if recipe == "full" else 1
    return n * maps * c * hw[0] * hw[1] * map_bytes + param_numel * param_bytes + n * out_dim * 4


def floor_us(nbytes: int, peak_gbps: float) -> float:
    """Time in microseconds to move ``nbytes`` at ``peak_gbps`` GB/s."""
    return nbytes / (peak_gbps * 1e9) * 1e6


def time_cuda(fn, warmup: int, iters: int) -> float:
    """Median microseconds of ``fn()`` measured with CUDA events after ``warmup`` calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in pairs)


def _progress(total: int):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="fused head benchmark", unit="case")
    except ImportError:  # pragma: no cover
        return None


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from mvd_edge.kernels.fold import fold_head, reference_head
    from mvd_edge.kernels.fused_head import fused_head, launch_count, resolve_mode
    from mvd_edge.kernels.interp_check import head_model

    dev = torch.device("cuda")
    dims = tuple(args.dims)
    variants_per = 5 if not args.no_compile else 4
    bar = _progress(len(args.recipes) * len(args.batch) * variants_per)
    rows: list[dict] = []
    for recipe in args.recipes:
        model32 = head_model(args.channels, dims, args.seed).to(dev)
        model16 = head_model(args.channels, dims, args.seed).to(dev).half()
        folded = fold_head(model32, recipe, dtype=torch.float16, device=dev)
        compiled = None
        if not args.no_compile:
            compiled = torch.compile(lambda maps, m=model16, r=recipe: reference_head(maps, m, r), dynamic=False)
        single = "fused" if recipe == "z" else "row"
        for n in args.batch:
            g = torch.Generator(device=dev).manual_seed(args.seed + n)
            maps = [torch.randn(n, args.channels, *args.hw, device=dev, dtype=torch.float16, generator=g).relu_()
                    for _ in model32.recipe_observations(recipe)]
            out = torch.empty(n, folded.out_dim, device=dev)
            nbytes = head_bytes(recipe, n, args.channels, args.hw, folded.params.numel(), folded.out_dim)
            floor = floor_us(nbytes, args.peak_gbps)
            with torch.no_grad():
                ref = reference_head(maps, model32, recipe)
            auto_mode = resolve_mode(folded, n, dev, "auto")
            variants = [
                ("fused-auto", lambda: fused_head(maps, folded, out=out, mode="auto"), launch_count(recipe, auto_mode)),
                ("fused-single", lambda: fused_head(maps, folded, out=out, mode=single), 1),
                ("fused-split", lambda: fused_head(maps, folded, out=out, mode="split"), 2),
                ("eager", lambda: reference_head(maps, model16, recipe), None),
            ]
            if compiled is not None:
                variants.append(("compile", lambda: compiled(maps), None))
            results = {}
            for name, fn, launches in variants:
                with torch.no_grad():
                    us = time_cuda(fn, args.warmup, args.iters)
                    err = float((fn().float() - ref).abs().max())
                results[name] = us
                rows.append({"recipe": recipe, "n": n, "variant": name, "median_us": us,
                             "bytes": nbytes, "floor_us": floor, "achieved_gbps": nbytes / (us * 1e-6) / 1e9,
                             "pct_of_peak": 100.0 * floor / us, "x_floor": us / floor, "max_abs_err_vs_fp32": err,
                             "launches": launches, "auto_mode": auto_mode if name == "fused-auto" else None})
                if bar is not None:
                    bar.update(1)
            for r in rows[-len(variants):]:
                r["speedup_vs_eager"] = results["eager"] / r["median_us"]
                r["speedup_vs_compile"] = results["compile"] / r["median_us"] if "compile" in results else None
            maps = out = None  # free the device memory before the next batch size
    if bar is not None:
        bar.close()
    return rows


def print_table(rows: list[dict]) -> None:
    header = ["recipe", "N", "variant", "median us", "GB/s", "% peak", "x floor", "vs eager", "vs compile", "max err"]

    def cells(r):
        vc = r["speedup_vs_compile"]
        return [r["recipe"], str(r["n"]), r["variant"] + (f" ({r['auto_mode']})" if r["auto_mode"] else ""),
                f"{r['median_us']:.1f}", f"{r['achieved_gbps']:.0f}", f"{r['pct_of_peak']:.1f}", f"{r['x_floor']:.2f}",
                f"{r['speedup_vs_eager']:.2f}x", "-" if vc is None else f"{vc:.2f}x", f"{r['max_abs_err_vs_fp32']:.1e}"]

    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="fused embedding head (fp16 maps and parameters)")
        for h in header:
            table.add_column(h, justify="left" if h in ("recipe", "variant") else "right")
        for r in rows:
            table.add_row(*cells(r))
        Console().print(table)
    except ImportError:  # pragma: no cover
        print(" | ".join(header))
        for r in rows:
            print(" | ".join(cells(r)))


def write_png(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    recipes = sorted({r["recipe"] for r in rows}, key=DEFAULT_RECIPES.index)
    fig, axes = plt.subplots(1, len(recipes), figsize=(5 * len(recipes), 4), squeeze=False)
    for ax, recipe in zip(axes[0], recipes):
        sub = [r for r in rows if r["recipe"] == recipe]
        for variant in dict.fromkeys(r["variant"] for r in sub):
            pts = sorted((r["n"], r["median_us"]) for r in sub if r["variant"] == variant)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=variant)
        floor = sorted({(r["n"], r["floor_us"]) for r in sub})
        ax.plot([p[0] for p in floor], [p[1] for p in floor], "k--", label="memory floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch N")
        ax.set_ylabel("median us")
        ax.set_title(recipe)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_GPU_MESSAGE, file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("unset TRITON_INTERPRET: the benchmark times compiled kernels on the GPU", file=sys.stderr)
        return 2
    rows = run(args)
    print_table(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import triton

    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "peak_gbps": args.peak_gbps, "channels": args.channels,
            "hw": list(args.hw), "dims": list(args.dims), "warmup": args.warmup, "iters": args.iters}
    (args.out_dir / "fused_head.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    png = write_png(rows, args.out_dir / "fused_head.png")
    print(f"wrote {args.out_dir / 'fused_head.json'}" + (f" and {args.out_dir / 'fused_head.png'}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
