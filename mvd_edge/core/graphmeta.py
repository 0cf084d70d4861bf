"""The graph metadata contract between export, quantisation, engines and the runtime."""

from __future__ import annotations

from pathlib import Path


def read_metadata(onnx_path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict (values are JSON strings where structured)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
