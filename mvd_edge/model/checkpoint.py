"""Checkpoint I/O: the mvd-edge checkpoint format, atomic save, safe load, rebuild the network.

Checkpoints hold only tensors and plain Python values and load with ``weights_only=True``.
The trainer writes them; export, the torch embedder and the CLI read them through here,
so nothing outside training depends on the trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mvd_edge.core.errors import DeviceUnavailable, MvdEdgeError
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_from_record
from mvd_edge.core.spec import ModelSpec
from mvd_edge.core.util import temp_beside, write_errno
from mvd_edge.model.net import MVDNet, check_graph_spec

CKPT_FORMAT = "mvd-edge-checkpoint/1"


class CheckpointError(MvdEdgeError, ValueError):
    """A checkpoint is missing, truncated or not an mvd-edge checkpoint."""


def resolve_device(device: str, local_rank: int = 0) -> str:
    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if device == "cuda":
        return f"cuda:{local_rank}"
    return device


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomic write: temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # an error, Ctrl-C or SIGTERM mid-write leaves no half-written temp behind; an OSError names the output
    with temp_beside(path) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(state, fh)
        except RuntimeError as exc:  # torch reports a failed write (a full disk) as a RuntimeError
            raise OSError(write_errno(path.parent), f"cannot write the checkpoint ({exc})", str(path)) from exc
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """Load an mvd-edge checkpoint with ``weights_only=True``; clear errors for bad files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if "weights_only" in str(exc) or "Weights only load failed" in first:
            first = "not a torch checkpoint that loads with weights_only=True"
        raise CheckpointError(f"cannot read checkpoint {p} (truncated or not a torch file?): {first}") from exc
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{p} is not an mvd-edge checkpoint (expected format {CKPT_FORMAT})")
    # the records every reader builds from (export, eval, verify, distill, bench, resume): checked once, here
    if "preprocess" in state:
        checkpoint_preprocess(state, p)
    if "model_spec" in state:
        checkpoint_model_spec(state, p)
    return state


_DAMAGED_FIX = "the file was edited or damaged: use an intact copy of it (the run's best.pt or last.pt) or retrain"


def checkpoint_preprocess(state: dict, path: str | Path) -> PreprocessSpec:
    """The checkpoint's ``preprocess`` record as a :class:`PreprocessSpec`; :class:`CheckpointError`
    naming the file and the field when it is missing or damaged."""
    return _record(state, path, "preprocess", preprocess_from_record, (ValueError,), "damaged")


def checkpoint_model_spec(state: dict, path: str | Path) -> ModelSpec:
    """The checkpoint's ``model_spec`` record as a :class:`ModelSpec`; :class:`CheckpointError`
    naming the file and the field when it is missing or damaged."""
    return _record(state, path, "model_spec", ModelSpec.from_dict, (KeyError, TypeError, ValueError),
                   "damaged or from another program")


def _record(state: dict, path: str | Path, key: str, parse, errors: tuple[type[Exception], ...], damaged: str):
    if key not in state:
        raise CheckpointError(f"{path}: it has no {key} record (not written by `mvd-edge train`?); {_DAMAGED_FIX}")
    try:
        return parse(state[key])
    except errors as exc:
        raise CheckpointError(f"{path}: its {key} is {damaged} ({exc}); {_DAMAGED_FIX}") from exc


def model_from_checkpoint(path: str | Path, recipe: str | None = None, map_location: str = "cpu") -> tuple[MVDNet, dict]:
    """Rebuild the model of a checkpoint in eval mode -> (model, checkpoint dict)."""
    p = Path(path)
    state = load_checkpoint(p, map_location)
    # a preprocessing the in-graph grayscale would get wrong is refused here
    check_graph_spec(checkpoint_preprocess(state, p), where=f"checkpoint {path}")
    spec = checkpoint_model_spec(state, p)
    model = MVDNet.from_spec(spec, recipe=recipe or state.get("recipe"))
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{p}: its weights do not fit its model_spec ({str(exc).splitlines()[0]})") from exc
    return model.eval(), state
