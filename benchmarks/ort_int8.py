"""FP32 vs FP16 vs INT8 (both Q/DQ flavours) under ONNX Runtime on this CPU, side by side in one run.

Median latency per call at batch 1 and 32 (after warm-up), and the ratio against FP32.
By default it measures the ResNet-50 configuration's one-pass ``shared`` recipe at 256x128
(random weights, realistic BatchNorm statistics, calibrated on a synthetic data set), or a
trained checkpoint with ``--checkpoint``. Prints a table, writes JSON and a PNG.

    python benchmarks/ort_int8.py --out runs/bench_int8
    python benchmarks/ort_int8.py --checkpoint runs/quick/best.pt --recipe full --out runs/bench_int8_tiny
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def _random_checkpoint(path: Path, backbone: str, recipe: str, height: int, width: int) -> Path:
    import torch

    from mvd_edge.core.preprocess import PreprocessSpec
    from mvd_edge.model.checkpoint import CKPT_FORMAT, save_checkpoint
    from mvd_edge.model.net import MVDNet

    torch.manual_seed(0)
    model = MVDNet(num_classes=395, backbone=backbone, recipe=recipe)
    model.train()
    with torch.no_grad():  # a few training-mode passes give BatchNorm realistic running statistics
        for _ in range(3):
            model.observe(torch.randn(8, 3, height, width))
    state = {"format": CKPT_FORMAT, "epoch": 0, "model": model.state_dict(), "model_spec": model.spec.to_dict(),
             "recipe": recipe, "preprocess": PreprocessSpec(height=height, width=width).to_dict()}
    save_checkpoint(state, path)
    return path


def _median_ms(sess, x: np.ndarray, iters: int, warmup: int) -> float:
    name = sess.get_inputs()[0].name
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--recipe", default="shared")
    ap.add_argument("--size", default="256x128")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calib-n", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_int8"))
    args = ap.parse_args()
    import onnxruntime as ort

    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.quant.api import quantize, to_fp16
    from mvd_edge.quant.manifest import from_dataset
    from mvd_edge.synth.dataset import write_sysu

    h, w = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.checkpoint or _random_checkpoint(args.out / "random.pt", args.backbone, args.recipe, h, w)
    fp32 = args.out / "model.onnx"
    export_onnx(ckpt, fp32, recipe=args.recipe)
    data = args.out / "calib-data"
    if not (data / "exp" / "test_id.txt").is_file():
        write_sysu(data, n_ids=30, images_per_cam=2, size=(h, w), seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small calibration set on purpose: latency, not accuracy, is measured
        quantize(fp32, args.out, from_dataset("sysu", data, n=args.calib_n), progress=False)
    to_fp16(fp32, args.out / "model.fp16.onnx")
    graphs = {"fp32": fp32, "fp16": args.out / "model.fp16.onnx", "int8-cpu (uint8 act.)": args.out / "model.int8-cpu.onnx",
              "int8-trt (int8 act.)": args.out / "model.int8-trt.onnx"}
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    rows = []
    for name, path in graphs.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        row = {"graph": name, "file": path.name}
        for b in batches:
            x = rng.standard_normal((b, 3, h, w), dtype=np.float32)
            row[f"ms@{b}"] = _median_ms(sess, x, args.iters if b == 1 else max(3, args.iters // 4), args.warmup)
        rows.append(row)
    for row in rows:
        for b in batches:
            row[f"x@{b}"] = rows[0][f"ms@{b}"] / row[f"ms@{b}"]
    cpu = platform.processor() or platform.machine()
    print(f"ONNX Runtime {ort.__version__} CPU ({cpu}), {args.backbone} '{args.recipe}' at {h}x{w}; median ms per call")
    header = f"{'graph':<24}" + "".join(f"{'ms@' + str(b):>10}{'x fp32':>8}" for b in batches)
    print(header)
    for row in rows:
        print(f"{row['graph']:<24}" + "".join(f"{row[f'ms@{b}']:>10.2f}{row[f'x@{b}']:>8.2f}" for b in batches))
    report = {"onnxruntime": ort.__version__, "cpu": cpu, "backbone": args.backbone, "recipe": args.recipe,
              "size": [h, w], "checkpoint": str(ckpt), "rows": rows}
    (args.out / "ort_int8.json").write_text(json.dumps(report, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = np.arange(len(rows))
    for i, b in enumerate(batches):
        ax.bar(xs + (i - 0.5) * 0.4, [r[f"x@{b}"] for r in rows], 0.4, label=f"batch {b}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(xs, [r["graph"] for r in rows], fontsize=8)
    ax.set_ylabel("speed-up vs FP32")
    ax.legend()
    ax.set_title(f"ONNX Runtime CPU: {args.backbone} {args.recipe} {h}x{w}")
    fig.tight_layout()
    fig.savefig(args.out / "ort_int8.png", dpi=120)
    print(f"wrote {args.out / 'ort_int8.json'} and {args.out / 'ort_int8.png'}")


if __name__ == "__main__":
    main()
