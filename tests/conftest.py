"""Shared fixtures: a tiny random MVD checkpoint (trainer format) and its ONNX export."""

from pathlib import Path

import pytest
import torch

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.model.checkpoint import CKPT_FORMAT, save_checkpoint
from mvd_edge.model.net import MVDNet

#: a training config small enough for a test: 12 synthetic ids at 64x32, two batches an epoch, CPU
SMALL_TRAIN = [
    "synth.n_ids=12", "synth.images_per_cam=2", "synth.height=64", "synth.width=32",
    "data.height=64", "data.width=32", "data.p_ids=3", "data.k_per_modality=2", "data.workers=0",
    "data.batches_per_epoch=2", "eval.trials=2", "eval.batch_size=32", "device=cpu",
]


def make_checkpoint(path: Path, recipe: str = "full", seed: int = 0, height: int = 64, width: int = 32,
                    student: bool = False) -> Path:
    """A tiny MVDNet with non-trivial BatchNorm statistics, saved like the trainer saves it
    (``student``: the one-branch network ``mvd-edge distill`` trains, recipe ``shared``)."""
    torch.manual_seed(seed)
    if student:
        recipe = "shared" if recipe == "full" else recipe
    model = MVDNet(num_classes=6, backbone="tiny", recipe=recipe, branches=("shared",) if student else
                   ("rgb", "ir", "shared"))
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            if m.weight.requires_grad:
                m.weight.data.uniform_(0.5, 1.5)
    state = {"format": CKPT_FORMAT, "epoch": 0, "model": model.state_dict(), "model_spec": model.spec.to_dict(),
             "recipe": recipe, "preprocess": PreprocessSpec(height=height, width=width).to_dict()}
    if student:
        state["student_of"] = {"teacher_sha256": "0" * 64, "teacher_backbone": "tiny", "teacher_recipe": "full",
                               "teacher_embedding_dim": 512, "init": "scratch"}
    save_checkpoint(state, path)
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_ckpt) -> Path:
    from mvd_edge.deploy.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(tiny_ckpt, out)
    return out



def load_repo_script(relpath: str):
    """A script of the repository (``benchmarks/x.py``, ``scripts/y.py``) imported as a module, for its functions."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relpath
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

#: the max batch of :func:`tiny_ort_engine`
TINY_ENGINE_MAX_BATCH = 4


@pytest.fixture(scope="module")
def tiny_ort_engine(tmp_path_factory, tiny_onnx) -> Path:
    """The tiny model as an ONNX Runtime engine (max batch 4) with its sidecar, one per test module."""
    from mvd_edge.runtime.engine import build_engine

    out = tmp_path_factory.mktemp("engine") / "reid.onnx"
    build_engine(tiny_onnx, out, backend="ort", batch=f"1,{TINY_ENGINE_MAX_BATCH},{TINY_ENGINE_MAX_BATCH}")
    return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for torchrun's rendezvous and local stand-in servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """One small synthetic data set per test module (written by the trainer's own path)."""
    from mvd_edge.core.config import load_train_config
    from mvd_edge.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("synth")
    cfg = load_train_config(None, SMALL_TRAIN + [f"out={root / 'unused'}", f"data.root={root / 'data'}"])
    ensure_synthetic(root / "data", cfg.synth)
    return root / "data"
