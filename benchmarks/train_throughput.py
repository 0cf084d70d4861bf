"""Training throughput (images/s) of MVDNet: fp32 vs AMP, side by side in one run.

One training step = forward of the three branches (four backbone passes), the full MVD loss,
backward and an Adam step, on random data (P identities x 2K images). Timed after warm-up
with CUDA synchronisation (or wall clock on the CPU); prints a table with the AMP/fp32 ratio
and writes JSON (and a PNG when matplotlib is present).

    python benchmarks/train_throughput.py --backbone resnet50 --batch 64 --size 256x128 --out runs/bench
    python benchmarks/train_throughput.py --backbone tiny --batch 32 --size 128x64 --device cpu --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from mvd_edge.core.config import LossConfig
from mvd_edge.core.modality import Modality
from mvd_edge.model.net import MVDNet
from mvd_edge.train.losses import mvd_loss


def measure(backbone: str, batch: int, size: tuple[int, int], device: str, amp: bool, steps: int, warmup: int,
            num_classes: int = 395) -> dict:
    torch.manual_seed(0)
    model = MVDNet(num_classes, backbone).to(device).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2.6e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    k = 4
    ids = max(2, batch // (2 * k))
    x = torch.randn(ids * 2 * k, 3, *size, device=device)
    labels = torch.arange(ids, device=device).repeat_interleave(2 * k)
    # the sampler's layout: per identity k visible then k infrared images (cross-modal VCD/VML pair them)
    mods = torch.tensor([int(Modality.VISIBLE)] * k + [int(Modality.INFRARED)] * k, device=device).repeat(ids)
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            out = model(x)
        loss, _ = mvd_loss(out, labels, LossConfig(), mods)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    res = {"backbone": backbone, "batch": int(x.shape[0]), "size": list(size), "amp": amp,
           "median_step_s": med, "images_per_s": x.shape[0] / med}
    if device.startswith("cuda"):
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", default="256x128")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is present")
    variants = [False, True] if args.device.startswith("cuda") else [False]
    rows = [measure(args.backbone, args.batch, (h, w), args.device, amp, args.steps, args.warmup) for amp in variants]
    base = rows[0]["images_per_s"]
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"MVDNet training throughput on {name} ({args.backbone}, {h}x{w}, batch {rows[0]['batch']})")
    print(f"{'variant':<8} {'step ms':>9} {'img/s':>9} {'x fp32':>7}")
    for r in rows:
        print(f"{'amp' if r['amp'] else 'fp32':<8} {r['median_step_s'] * 1e3:>9.1f} {r['images_per_s']:>9.1f} "
              f"{r['images_per_s'] / base:>7.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"train_throughput_{args.backbone}.json"
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
