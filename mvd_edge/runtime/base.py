"""The one Embedder interface every backend implements (no torch import here)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch


class Embedder(ABC):
    """Embeds uint8 BGR crops of any size into L2-normalised float32 vectors.

    Subclasses implement :meth:`infer` on preprocessed batches of at most ``max_batch``.
    ``stage_times`` accumulates seconds per stage (``preprocess``, ``infer`` and whatever the
    backend adds, e.g. ``h2d``/``d2h``) for profiling; :meth:`reset_times` clears it.
    """

    backend: str = "?"

    def __init__(self, spec: PreprocessSpec, dim: int, max_batch: int, info: dict | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.spec = spec
        self.dim = int(dim)
        self.max_batch = int(max_batch)
        self.info = dict(info or {})
        self.stage_times: dict[str, float] = {}

    @property
    def precision(self) -> str:
        return str(self.info.get("precision", "fp32"))

    def reset_times(self) -> None:
        self.stage_times = {}

    def _tick(self, stage: str, seconds: float) -> None:
        self.stage_times[stage] = self.stage_times.get(stage, 0.0) + seconds

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[n, 3, H, W]`` (n <= max_batch) -> float32 ``[n, D]``."""

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops -> what :meth:`infer` takes (default: the shared preprocessing, float32 NCHW).

        A backend whose server preprocesses (a Triton ensemble) overrides it."""
        return preprocess_batch(crops, self.spec)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """List of uint8 ``[h, w, 3]`` BGR crops -> float32 ``[N, D]``, L2-normalised.

        Batches larger than ``max_batch`` are split; an empty list gives ``[0, D]``.
        """
        if isinstance(crops, np.ndarray) and crops.ndim == 3:
            raise TypeError("embed() takes a list of crops; wrap a single crop as [crop]")
        out = np.empty((len(crops), self.dim), np.float32)
        for start in range(0, len(crops), self.max_batch):
            chunk = crops[start:start + self.max_batch]
            t0 = time.perf_counter()
            x = self.prepare(chunk)
            t1 = time.perf_counter()
            y = self.infer(x)
            t2 = time.perf_counter()
            self._tick("preprocess", t1 - t0)
            self._tick("infer", t2 - t1)
            if y.shape != (len(chunk), self.dim):
                raise RuntimeError(f"{self.backend} engine returned shape {y.shape}, expected {(len(chunk), self.dim)}")
            out[start:start + len(chunk)] = y
        t3 = time.perf_counter()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)  # re-normalise (fp16/int8 engines drift slightly)
        self._tick("postprocess", time.perf_counter() - t3)
        return out

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device resources (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
