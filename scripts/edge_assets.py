"""Regenerate the committed bare-install assets in tests/data/edge/ (needs the [train] extra).

* ``tiny.onnx``: a random tiny-backbone MVD embedder (recipe ``full``, 64x32 crops, small
  bottleneck) exported by ``export_onnx``; no trained weights, it only has to run.
* ``video/``: a 2-second synthetic IR/RGB video pair (3 people, 120x160) with MOT boxes and ground truth.

`.ci/run` installs mvd-edge with no extras into a fresh virtual environment and runs
``build-engine``, ``profile`` and ``match`` on these files (``.ci/bare_install``), proving that
the edge path needs neither torch nor onnx nor matplotlib.

    python scripts/edge_assets.py            # rewrites tests/data/edge/
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "edge"


def main() -> int:
    import torch

    from mvd_edge.core.preprocess import PreprocessSpec
    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.model.checkpoint import CKPT_FORMAT, save_checkpoint
    from mvd_edge.model.net import MVDNet
    from mvd_edge.synth.video import write_synth_video

    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = MVDNet(num_classes=4, backbone="tiny", bottleneck_dims=(64, 32, 32), recipe="full").eval()
    ckpt = OUT / "tiny.pt"
    save_checkpoint({"format": CKPT_FORMAT, "epoch": 0, "model": model.state_dict(), "model_spec": model.spec.to_dict(),
                     "recipe": "full", "preprocess": PreprocessSpec(height=64, width=32).to_dict()}, ckpt)
    report = export_onnx(ckpt, OUT / "tiny.onnx")
    ckpt.unlink()
    video = write_synth_video(OUT / "video", n_ids=3, seconds=2.0, seed=0, fps=10.0, size=(120, 160))
    print(f"wrote {OUT / 'tiny.onnx'} ({(OUT / 'tiny.onnx').stat().st_size} bytes, dim {report.get('embedding_dim')})")
    print(f"wrote {video['frames']} frame pairs to {OUT / 'video'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
