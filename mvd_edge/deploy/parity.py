"""The one comparison of embeddings against a reference (the same crops through another model,
precision or backend): per-row cosine and absolute error, summarised.

Export (ONNX Runtime vs torch), the FP16/INT8 graphs and their accuracy fallback (vs the FP32
graph), ``verify`` and ``bench`` (engines vs torch FP32) all measure with :func:`compare`.
numpy only: quantisation and the edge runtime use it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvd_edge.core.util import row_cosine


@dataclass(frozen=True)
class Parity:
    mean_cosine: float
    min_cosine: float
    p01_cosine: float  # the 1st percentile
    max_abs_err: float

    def cosine(self) -> dict[str, float]:
        """``{"mean", "min", "p01"}`` (the cosine block of verify's report)."""
        return {"mean": self.mean_cosine, "min": self.min_cosine, "p01": self.p01_cosine}


def compare(got: np.ndarray, ref: np.ndarray) -> Parity:
    """``got`` against ``ref`` (two ``[N, D]`` arrays of one shape). A row that is not finite never
    counts as agreement: its cosine is -1 and its error infinite."""
    cos = row_cosine(got, ref)
    cos = np.where(np.isfinite(cos), cos, -1.0)
    err = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    err = np.where(np.isfinite(err), err, np.inf)
    return Parity(float(cos.mean()), float(cos.min()), float(np.percentile(cos, 1)),
                  float(err.max()) if err.size else 0.0)
