"""Triton Inference Server model repositories from mvd-edge engines (torch-free, onnx-free).

:func:`export_triton` writes, for an engine (an ONNX Runtime ``.onnx`` or TensorRT ``.engine``
with its sidecar, or a bare exported ``.onnx``) and a model name ``NAME``::

    <repo>/NAME/config.pbtxt            the engine: platform onnxruntime_onnx | tensorrt_plan,
    <repo>/NAME/1/model.onnx|model.plan   float32 [N, 3, H, W] -> float32 [N, D]
    <repo>/NAME/1/model.*.json          the engine's sidecar, copied for provenance
    <repo>/NAME_pre/config.pbtxt        Python-backend preprocessing: uint8 BGR [N, H, W, 3]
    <repo>/NAME_pre/1/model.py            (already resized) -> float32 [N, 3, H, W]
    <repo>/NAME_ensemble/config.pbtxt   NAME_pre -> NAME: uint8 crops in, embeddings out

(``preprocess="none"``: only ``NAME``). Every config carries the engine's preprocessing as the
JSON string parameter ``mvd_edge.preprocess`` (the :class:`PreprocessSpec` dict) plus
``mvd_edge.embedding_dim`` and ``mvd_edge.engine`` (precision, recipe, operating point, ...),
which :class:`mvd_edge.runtime.triton_backend.TritonEmbedder` reads back from the server's
config endpoint, so a Triton-served engine embeds like every other backend.

The configs are written in protobuf text format by :func:`render_pbtxt` from the same
dictionary form Triton's ``/v2/models/NAME/config`` endpoint answers with (and
:func:`parse_config_pbtxt` reads them back into it); :func:`check_triton_model` checks a
written model against the graph (or, for a TensorRT plan, the sidecar) it was made from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

from mvd_edge.core.errors import OutputExists, UsageError
from mvd_edge.core.graphmeta import _fields, _name_of  # the protobuf wire walker behind read_onnx_header
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.deploy import formats
from mvd_edge.runtime.engine import graph_facts
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, sha256_file, sidecar_path

__all__ = ["KEY_ENGINE", "KEY_EMBEDDING_DIM", "KEY_FORMAT", "KEY_PREPROCESS", "PRE_MODEL_PY", "TRITON_FORMAT",
           "check_triton_model", "default_model_name", "engine_io", "export_triton", "parse_config_pbtxt",
           "read_config", "render_pbtxt", "spec_from_config"]

TRITON_FORMAT = "mvd-edge-triton/1"
KEY_FORMAT = "mvd_edge.format"
KEY_PREPROCESS = "mvd_edge.preprocess"
KEY_EMBEDDING_DIM = "mvd_edge.embedding_dim"
KEY_ENGINE = "mvd_edge.engine"
#: sidecar fields repeated in the ``mvd_edge.engine`` parameter (what a client wants to know about the engine)
ENGINE_FIELDS = ("backend", "precision", "int8_flavour", "recipe", "embedding_dim", "fused_head", "engine_file",
                 "engine_sha256", "operating_point", "student_of", "versions")

PRE_INPUT, PRE_OUTPUT = "crops", "preprocessed"  # tensor names of NAME_pre (and the ensemble's input)

#: ONNX TensorProto element types -> Triton data types
ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16",
                  6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64",
                  12: "TYPE_UINT32", 13: "TYPE_UINT64", 16: "TYPE_BF16"}

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# ------------------------------------------------------------------------------ protobuf text format

#: fields written as bare identifiers (protobuf enums) rather than quoted strings
ENUM_FIELDS = frozenset({"data_type", "kind", "format"})
#: repeated fields: always lists in the dictionary form, even with one element
REPEATED_FIELDS = frozenset({"input", "output", "dims", "instance_group", "preferred_batch_size", "step", "gpus"})
#: map fields: ``{key: value}`` in the dictionary form, ``field { key: .. value: .. }`` entries in the text
MAP_FIELDS = frozenset({"parameters", "input_map", "output_map"})


_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t"}


def _quote(text: str) -> str:
    """Text format strings are bytes: other control and non-ASCII bytes of the UTF-8 are octal escapes."""
    return '"' + "".join(_ESCAPES.get(b) or (chr(b) if 0x20 <= b <= 0x7E else f"\\{b:03o}")
                         for b in text.encode()) + '"'


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if key in ENUM_FIELDS:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
                raise ValueError(f"{key}: {value!r} is not an enum value")
            return value
        return _quote(value)
    raise TypeError(f"{key}: cannot write {type(value).__name__} in protobuf text format")


def _render_fields(msg: dict, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in msg.items():
        if key in MAP_FIELDS:
            if not isinstance(value, dict):
                raise TypeError(f"{key} is a map field and needs a dict")
            for k, v in value.items():
                entry = {"key": k, "value": v}
                lines.append(f"{pad}{key} {{")
                lines.extend(_render_fields(entry, indent + 1))
                lines.append(f"{pad}}}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key} {{")
            lines.extend(_render_fields(value, indent + 1))
            lines.append(f"{pad}}}")
        elif isinstance(value, list):
            if key not in REPEATED_FIELDS:
                raise ValueError(f"{key} is not a known repeated field")
            if all(isinstance(v, dict) for v in value) and value:
                lines.append(f"{pad}{key} [")
                for i, v in enumerate(value):
                    lines.append(f"{pad}  {{")
                    lines.extend(_render_fields(v, indent + 2))
                    lines.append(f"{pad}  }}{',' if i < len(value) - 1 else ''}")
                lines.append(f"{pad}]")
            else:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(key, v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(key, value)}")
    return lines


def render_pbtxt(config: dict) -> str:
    """A model config in Triton's dictionary (JSON) form -> protobuf text (``config.pbtxt``).

    Strings are quoted except :data:`ENUM_FIELDS`; lists are repeated fields; :data:`MAP_FIELDS`
    dicts become ``key``/``value`` entries. :func:`parse_config_pbtxt` is its inverse.
    """
    return "\n".join(_render_fields(config, 0)) + "\n"


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}\[\]:,;<>])
""", re.VERBOSE)


_UNESCAPE_RE = re.compile(rb"\\(?:([0-7]{1,3})|[xX]([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b'"': b'"', b"'": b"'", b"\\": b"\\", b"a": b"\a",
                   b"b": b"\b", b"f": b"\f", b"v": b"\v", b"?": b"?"}


def _unquote(tok: str) -> str:
    def one(m: re.Match) -> bytes:
        if m[1] or m[2]:
            return bytes([int(m[1], 8) if m[1] else int(m[2], 16)])
        if m[3] not in _SIMPLE_ESCAPES:
            raise ValueError(f"unknown escape \\{m[3].decode(errors='replace')} in {tok}")
        return _SIMPLE_ESCAPES[m[3]]

    return _UNESCAPE_RE.sub(one, tok[1:-1].encode()).decode()


def _tokens(text: str) -> list[tuple[str, str, int]]:
    toks, pos = [], 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise ValueError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind != "ws":
            toks.append((kind, m.group(), text.count("\n", 0, pos) + 1))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise ValueError(f"unexpected end of text{f', expected {want!r}' if want else ''}")
        if want is not None and tok[1] != want:
            raise ValueError(f"line {tok[2]}: expected {want!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] in texts

    def message(self, close: str | None) -> dict:
        """The fields up to ``close`` (None: the end of the text), in the dictionary form (:func:`_store`)."""
        fields: dict[str, Any] = {}
        while True:
            tok = self.peek()
            if tok is None:
                if close is not None:
                    raise ValueError(f"unexpected end of text, expected {close!r}")
                return fields
            if close is not None and tok[1] == close:
                self.take()
                return fields
            kind, name, line = self.take()
            if kind != "ident":
                raise ValueError(f"line {line}: expected a field name, got {name!r}")
            colon = self.at(":")
            if colon:
                self.take(":")
            if self.peek() is None:
                raise ValueError(f"line {line}: field {name} has no value")
            if self.at("["):
                self.take("[")
                values = []
                while self.peek() is not None and not self.at("]"):
                    values.append(self.value())
                    if self.at(","):
                        self.take(",")
                self.take("]")
            elif not colon and not self.at("{", "<"):
                raise ValueError(f"line {line}: expected ':' after {name}")
            else:
                values = [self.value()]
            _store(fields, name, values)
            if self.at(",", ";"):
                self.take()

    def value(self):
        kind, tok, line = self.take()
        if tok in ("{", "<"):
            return self.message("}" if tok == "{" else ">")
        if kind == "str":
            parts = [_unquote(tok)]
            while self.peek() is not None and self.peek()[0] == "str":  # adjacent strings concatenate
                parts.append(_unquote(self.take()[1]))
            return "".join(parts)
        if kind == "num":
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        if kind == "ident":
            return {"true": True, "True": True, "false": False, "False": False}.get(tok, tok)
        raise ValueError(f"line {line}: unexpected {tok!r}")


def _store(fields: dict, key: str, values: list) -> None:
    """Add a field's values to a message: map entries into a dict, repeated fields to a list, and a singular
    field given twice keeps the last value, as in protobuf."""
    if key in MAP_FIELDS:
        mapping = fields.setdefault(key, {})
        for entry in values:
            if not isinstance(entry, dict) or "key" not in entry:
                raise ValueError(f"{key}: map entries need a key")
            mapping[entry["key"]] = entry.get("value")
    elif key in REPEATED_FIELDS:
        fields.setdefault(key, []).extend(values)
    elif values:
        fields[key] = values[-1]


def parse_config_pbtxt(text: str) -> dict:
    """``config.pbtxt`` text -> the dictionary (JSON) form Triton's config endpoint uses.

    Repeated fields (:data:`REPEATED_FIELDS`) are lists, map fields (:data:`MAP_FIELDS`) dicts,
    enums strings. Raises ValueError naming the line on malformed text.
    """
    return _Parser(text).message(None)


def read_config(model_dir: str | Path) -> dict:
    """Parse ``<model_dir>/config.pbtxt``; EngineError when missing or malformed."""
    path = Path(model_dir) / "config.pbtxt"
    if not path.is_file():
        raise EngineError(f"no Triton model config at {path}")
    try:
        return parse_config_pbtxt(path.read_text())
    except ValueError as exc:
        raise EngineError(f"{path} is not a valid protobuf text config: {exc}") from exc


# ------------------------------------------------------------------------------ what the engine is


def _sub(messages: list[memoryview], field: int) -> list[memoryview]:
    """The length-delimited fields number ``field`` of each protobuf message of ``messages``."""
    return [v for m in messages for n, w, v in _fields(m) if n == field and w == 2]


def _dims_of(value_info: memoryview) -> tuple[str, int | None, list[int | None]]:
    """ONNX ValueInfoProto -> (name, element type, dims with None for symbolic ones)."""
    tensor = _sub(_sub([value_info], 2), 1)  # ValueInfoProto.type -> TypeProto.tensor_type
    elem = next((v for t in tensor for n, w, v in _fields(t) if n == 1 and w == 0), None)
    dims = _sub(_sub(tensor, 2), 1)  # tensor_type.shape -> TensorShapeProto.dim
    return _name_of(value_info), elem, [next((v for n, w, v in _fields(d) if n == 1 and w == 0), None) for d in dims]


def _onnx_io(path: Path) -> dict[str, tuple[int | None, list[int | None]]]:
    """Element type and dims of each graph input and output of an ONNX file, by name."""
    try:
        graph = _sub([memoryview(path.read_bytes())], 7)  # ModelProto.graph
        return {name: (elem, dims) for name, elem, dims in map(_dims_of, _sub(graph, 11) + _sub(graph, 12))}
    except ValueError as exc:
        raise EngineError(f"{path} is not a loadable ONNX graph: {exc}") from exc


def engine_io(engine: str | Path) -> dict:
    """What a Triton config needs to know about an engine, from its graph and/or sidecar.

    Returns ``platform`` (``onnxruntime_onnx``/``tensorrt_plan``), ``model_file`` (``model.onnx``/
    ``model.plan``), ``info`` (the sidecar dict, or None for a bare ``.onnx``), ``spec``
    (:class:`PreprocessSpec`), ``embedding_dim``, ``input``/``output`` as ``(name, data_type,
    dims without the batch dim)``, ``max_batch_limit`` (a TensorRT profile's max, else None) and
    ``default_max_batch``.
    """
    p = Path(engine)
    if not p.is_file():
        raise EngineError(f"engine not found: {p}")
    info = read_sidecar(p) if sidecar_path(p).is_file() else None
    if info is not None and info.get("backend") == "trt":
        return _plan_io(p, info)
    if info is not None and info.get("backend") != "ort":
        raise EngineError(f"{sidecar_path(p)} names an unknown backend {info.get('backend')!r}")
    if info is None and formats.for_path(p, kinds=(formats.GRAPH,)) is None:
        raise EngineError(f"{p}: no sidecar {sidecar_path(p).name} beside it and not an .onnx graph; build engines "
                          "with `mvd-edge build-engine`")
    facts = graph_facts(p)
    meta = facts["meta"]
    if meta.fused_head:
        raise EngineError(f"{p} holds the mvd::FusedHead TensorRT plugin op, which ONNX Runtime cannot run; export "
                          "without --fused-head")
    spec, dim = meta.preprocess, meta.embedding_dim
    if info is not None:
        for key, graph_value in (("input_name", facts["input_name"]), ("output_name", facts["output_name"]),
                                 ("embedding_dim", dim), ("preprocess", spec.to_dict())):
            if key in info and info[key] != graph_value:
                raise EngineError(f"{p}: its sidecar and its graph disagree on {key} (sidecar {info[key]!r}, graph "
                                  f"{graph_value!r}); rebuild it with `mvd-edge build-engine`")
    io = _onnx_io(p)
    in_name, out_name = facts["input_name"], facts["output_name"]
    (in_elem, in_dims), (out_elem, out_dims) = io[in_name], io[out_name]
    where = f"{p}: graph"
    if len(in_dims) != 4 or len(out_dims) != 2:
        raise EngineError(f"{where} input {in_name} has shape {in_dims} and output {out_name} {out_dims}; expected "
                          "[batch, 3, H, W] -> [batch, D]")
    for what, d in (("input", in_dims[0]), ("output", out_dims[0])):
        if d is not None:
            raise EngineError(f"{where} {what} has a fixed batch size {d}; Triton batching needs a dynamic batch "
                              "dimension (export with `mvd-edge export`)")
    want_in = [3, spec.height, spec.width]
    for i, (g, w) in enumerate(zip(in_dims[1:], want_in)):
        if g is not None and g != w:
            raise EngineError(f"{where} input dim {i + 1} is {g} but its preprocessing says {w} "
                              f"(input 3x{spec.height}x{spec.width})")
    if out_dims[1] is not None and out_dims[1] != dim:
        raise EngineError(f"{where} output has {out_dims[1]} features but its metadata says embedding_dim {dim}")
    if in_elem not in ONNX_TO_TRITON or out_elem not in ONNX_TO_TRITON:
        raise EngineError(f"{where} has element types {in_elem}/{out_elem} that Triton has no type for")
    return {"platform": "onnxruntime_onnx", "model_file": "model.onnx", "info": info, "spec": spec,
            "embedding_dim": dim, "precision": meta.precision, "recipe": meta.recipe,
            "input": (in_name, ONNX_TO_TRITON[in_elem], want_in),
            "output": (out_name, ONNX_TO_TRITON[out_elem], [dim]),
            "max_batch_limit": None, "default_max_batch": int((info or {}).get("max_batch", 32))}


def _plan_io(p: Path, info: dict) -> dict:
    missing = [k for k in ("input_name", "output_name", "preprocess", "embedding_dim", "batch_profile") if k not in info]
    if missing:
        raise EngineError(f"{sidecar_path(p)} lacks {', '.join(missing)}; rebuild it with `mvd-edge build-engine`")
    if info.get("fused_head"):
        raise EngineError(f"{p} was built with the fused-head plugin (a Python TensorRT plugin), which Triton's "
                          "TensorRT backend cannot load; build the engine from a graph exported without --fused-head")
    spec = PreprocessSpec.from_dict(info["preprocess"])  # read_sidecar checked it
    bmin, _, bmax = (int(v) for v in info["batch_profile"])
    if bmin != 1:
        warnings.warn(f"{p}: its optimisation profile starts at batch {bmin}; Triton will fail requests smaller "
                      "than that (rebuild with --batch 1,OPT,MAX)", stacklevel=3)
    dim = int(info["embedding_dim"])
    # mvd-edge graphs take and give float32 at every precision (FP16/INT8 live inside the graph)
    return {"platform": "tensorrt_plan", "model_file": "model.plan", "info": info, "spec": spec,
            "embedding_dim": dim, "precision": info.get("precision", "fp32"), "recipe": info.get("recipe"),
            "input": (info["input_name"], "TYPE_FP32", [3, spec.height, spec.width]),
            "output": (info["output_name"], "TYPE_FP32", [dim]),
            "max_batch_limit": bmax, "default_max_batch": int(info.get("max_batch", bmax))}


def default_model_name(engine: str | Path) -> str:
    """A Triton model name from an engine file name: ``model.int8-cpu.onnx`` -> ``model_int8-cpu``."""
    stem = Path(engine).name
    for suffix in (".onnx", ".engine", ".plan"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "mvd_edge"
    return name if _NAME_RE.match(name) else f"m_{name}"


def string_params(params: object) -> dict[str, dict[str, str]]:
    """Parameters as plain values (objects written as JSON; v2 metadata's form), or already in the config form,
    -> the config form ``{key: {"string_value": s}}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in (params or {}).items() if isinstance(params, dict) else ():
        if isinstance(value, dict) and isinstance(value.get("string_value"), str):
            out[key] = {"string_value": value["string_value"]}
        elif isinstance(value, str):
            out[key] = {"string_value": value}
        elif value is not None:
            out[key] = {"string_value": json.dumps(value, sort_keys=True)}
    return out


def engine_summary(info: dict) -> dict:
    """The sidecar fields of the ``mvd_edge.engine`` parameter (:data:`ENGINE_FIELDS`, where set)."""
    return {k: info[k] for k in ENGINE_FIELDS if info.get(k) is not None}


def spec_from_config(config: dict, where: str) -> tuple[PreprocessSpec, int | None]:
    """The preprocessing and embedding dimension recorded in a Triton config's ``mvd_edge.*`` parameters."""
    params = config.get("parameters") or {}
    entry = params.get(KEY_PREPROCESS)
    if not isinstance(entry, dict) or "string_value" not in entry:
        raise EngineError(f"{where} has no {KEY_PREPROCESS} parameter in its config: it was not exported by "
                          "mvd-edge; write the repository with `mvd-edge export-triton`")
    try:
        spec = PreprocessSpec.from_dict(json.loads(entry["string_value"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise EngineError(f"{where}: its {KEY_PREPROCESS} parameter is not a preprocessing spec ({exc})") from exc
    dim_entry = params.get(KEY_EMBEDDING_DIM)
    dim = None
    if isinstance(dim_entry, dict) and "string_value" in dim_entry:
        try:
            dim = int(dim_entry["string_value"])
        except ValueError as exc:
            raise EngineError(f"{where}: its {KEY_EMBEDDING_DIM} parameter is not an integer") from exc
    return spec, dim


# ------------------------------------------------------------------------------ the pre model

#: the Python-backend preprocessing model written as ``NAME_pre/1/model.py``; it reads the spec from its config
PRE_MODEL_PY = '''"""mvd-edge preprocessing for Triton's Python backend (written by `mvd-edge export-triton`).

uint8 BGR crops [N, H, W, 3], already resized to the engine's input size, -> float32 [N, 3, H, W]:
the channel order, [0, 1] scaling and mean/std of the engine's preprocessing, read from this
model's config parameter "mvd_edge.preprocess" (mvd_edge.core.preprocess.normalize, in numpy).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


def to_network_input(crops, spec):
    """uint8 [N, H, W, 3] BGR -> float32 [N, 3, H, W] in spec["color_order"], normalised."""
    if spec.get("color_order", "RGB").upper() == "RGB":
        crops = crops[..., ::-1]
    x = crops.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.spec = json.loads(config["parameters"]["mvd_edge.preprocess"]["string_value"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.shape = (int(self.spec["height"]), int(self.spec["width"]), 3)

    def execute(self, requests):
        responses = []
        for request in requests:
            crops = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            if crops.dtype != np.uint8 or crops.ndim != 4 or tuple(crops.shape[1:]) != self.shape:
                error = pb_utils.TritonError(
                    f"expected uint8 BGR crops [N, {self.shape[0]}, {self.shape[1]}, 3], got {crops.dtype} "
                    f"{list(crops.shape)}")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            out = pb_utils.Tensor(self.output_name, to_network_input(crops, self.spec))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses

    def finalize(self):
        pass
'''


# ------------------------------------------------------------------------------ export


def _write_model_dir(staging: Path, name: str, config: dict, files: dict[str, bytes | Path]) -> Path:
    d = staging / name
    (d / "1").mkdir(parents=True)
    (d / "config.pbtxt").write_text(render_pbtxt(config))
    for rel, content in files.items():
        target = d / rel
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    return d


def export_triton(engine_or_onnx: str | Path, repo_dir: str | Path, name: str | None = None, *,
                  max_batch: int | None = None, instances: int = 1, kind: str | None = None,
                  preferred_batch: tuple[int, ...] | list[int] | None = None, queue_delay_us: int = 100,
                  preprocess: str = "ensemble", overwrite: bool = False) -> dict:
    """Write a Triton model repository entry for an engine (see the module docstring for the layout).

    ``max_batch``: ``max_batch_size`` of every model (default: the sidecar's ``max_batch``, 32 for
    a bare graph; at most a TensorRT engine's profile max). ``instances``/``kind`` (``cpu``/``gpu``;
    default: gpu for TensorRT and engines built for CUDA, else cpu): the engine's instance group.
    ``preferred_batch``/``queue_delay_us``: its dynamic batcher. ``preprocess``: ``"ensemble"``
    (also ``NAME_pre`` and ``NAME_ensemble``) or ``"none"``. Existing (non-empty) model folders are
    refused unless ``overwrite``; each folder is written beside the repository first and renamed
    into place, so Triton never sees half a model. Returns a report dict (models, paths, settings).
    """
    src = Path(engine_or_onnx)
    repo = Path(repo_dir)
    io = engine_io(src)
    name = name or default_model_name(src)
    if not _NAME_RE.match(name):
        raise UsageError(f"Triton model name {name!r}: use letters, digits, '_', '-' and '.' (no '/')")
    if preprocess not in ("ensemble", "none"):
        raise UsageError(f"preprocess must be 'ensemble' or 'none', got {preprocess!r}")
    kind = _instance_kind(io, kind, src)
    max_batch, preferred = _batching(io, max_batch, instances, preferred_batch, queue_delay_us)
    names = [name] + ([f"{name}_pre", f"{name}_ensemble"] if preprocess == "ensemble" else [])
    for n in names:
        target = repo / n
        if target.exists() and not target.is_dir():
            raise OutputExists(f"{target} exists and is not a folder; choose another model name")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise OutputExists(f"Triton model folder {target} already exists; add --overwrite to replace it, or "
                               "choose another --name")
    batching: dict[str, Any] = {"preferred_batch_size": preferred} if preferred else {}
    batching["max_queue_delay_microseconds"] = int(queue_delay_us)
    engine = {"max_batch_size": max_batch, "dynamic_batching": batching,
              "instance_group": [{"count": int(instances), "kind": f"KIND_{kind.upper()}"}]}
    configs, files = _model_configs(io, src, name, engine, ensemble=preprocess == "ensemble")
    _write_models(repo, names, configs, files, check=lambda staging: check_triton_model(staging, name, engine=src))
    if preprocess == "none":
        left = [s for s in (f"{name}_pre", f"{name}_ensemble") if (repo / s).exists()]
        if left:
            warnings.warn(f"{', '.join(str(repo / s) for s in left)} from an earlier export are still in the "
                          "repository; remove them if they no longer match this engine", stacklevel=2)
    (in_name, _, in_dims), (out_name, _, out_dims) = io["input"], io["output"]
    return {"repo": str(repo), "models": names, "platform": io["platform"], "max_batch": max_batch,
            "instances": int(instances), "kind": kind, "preferred_batch": preferred,
            "queue_delay_us": int(queue_delay_us), "input": {"name": in_name, "dims": in_dims},
            "output": {"name": out_name, "dims": out_dims}, "preprocess": io["spec"].to_dict(),
            "configs": {n: str(repo / n / "config.pbtxt") for n in names}}


def _instance_kind(io: dict, kind: str | None, src: Path) -> str:
    """``cpu``/``gpu`` instances of the engine (default: gpu for TensorRT and engines built for CUDA)."""
    info = io["info"] or {}
    if kind is None:
        kind = "gpu" if io["platform"] == "tensorrt_plan" or info.get("device") == "cuda" else "cpu"
    if kind not in ("cpu", "gpu"):
        raise UsageError(f"kind must be cpu or gpu, got {kind!r}")
    if io["platform"] == "tensorrt_plan" and kind != "gpu":
        raise UsageError("a TensorRT engine runs on a GPU only: use kind gpu (--kind gpu)")
    if io["platform"] == "onnxruntime_onnx" and info.get("device") == "cpu" and kind == "gpu":
        warnings.warn(f"{src} was optimised by ONNX Runtime for the CPU; for GPU instances export its source graph "
                      f"({info.get('source_onnx', 'the exported .onnx')}) instead", stacklevel=3)
    return kind


def _batching(io: dict, max_batch: int | None, instances: int, preferred_batch, queue_delay_us: int):
    """Check the batch and instance settings; returns ``max_batch_size`` and the sorted preferred batch sizes."""
    max_batch = int(max_batch if max_batch is not None else io["default_max_batch"])
    limit = io["max_batch_limit"]
    if max_batch < 1:
        raise UsageError(f"max_batch must be >= 1, got {max_batch}")
    if limit is not None and max_batch > limit:
        raise UsageError(f"max_batch {max_batch} is more than the TensorRT engine's profile allows ({limit}); "
                         f"use at most {limit} or rebuild the engine with a larger --batch")
    if int(instances) < 1:
        raise UsageError(f"instances must be >= 1, got {instances}")
    preferred = sorted({int(b) for b in (preferred_batch or ())})
    if preferred and (preferred[0] < 1 or preferred[-1] > max_batch):
        raise UsageError(f"preferred batch sizes {preferred} must lie in 1..{max_batch} (max_batch)")
    if int(queue_delay_us) < 0:
        raise UsageError(f"queue_delay_us must be >= 0, got {queue_delay_us}")
    return max_batch, preferred


def _model_configs(io: dict, src: Path, name: str, engine: dict, ensemble: bool):
    """The config (dictionary form) and files of the engine model ``name`` (``engine``: its batching and instance
    settings) and, with ``ensemble``, of ``name_pre`` and ``name_ensemble``."""
    spec, max_batch = io["spec"], engine["max_batch_size"]
    in_name, in_type, in_dims = io["input"]
    out_name, out_type, out_dims = io["output"]
    summary = engine_summary(io["info"] or {})
    summary.setdefault("precision", io["precision"])
    if io["recipe"] is not None:
        summary.setdefault("recipe", io["recipe"])
    summary["source_file"] = src.name
    common = {KEY_FORMAT: TRITON_FORMAT, KEY_PREPROCESS: spec.to_dict(),
              KEY_EMBEDDING_DIM: str(io["embedding_dim"])}
    output = [{"name": out_name, "data_type": out_type, "dims": out_dims}]
    configs: dict[str, dict] = {name: {
        "name": name, "platform": io["platform"], "max_batch_size": max_batch,
        "input": [{"name": in_name, "data_type": in_type, "dims": in_dims}], "output": output,
        "dynamic_batching": engine["dynamic_batching"], "instance_group": engine["instance_group"],
        "parameters": string_params({**common, KEY_ENGINE: summary}),
    }}
    model_file = io["model_file"]
    files: dict[str, dict[str, bytes | Path]] = {name: {f"1/{model_file}": src}}
    if io["info"] is not None:
        files[name][f"1/{model_file}.json"] = sidecar_path(src)
    if not ensemble:
        return configs, files
    crops = [{"name": PRE_INPUT, "data_type": "TYPE_UINT8", "dims": [spec.height, spec.width, 3]}]
    configs[f"{name}_pre"] = {
        "name": f"{name}_pre", "backend": "python", "max_batch_size": max_batch, "input": crops,
        "output": [{"name": PRE_OUTPUT, "data_type": "TYPE_FP32", "dims": in_dims}],
        "instance_group": [{"count": engine["instance_group"][0]["count"], "kind": "KIND_CPU"}],
        "parameters": string_params(common),
    }
    configs[f"{name}_ensemble"] = {
        "name": f"{name}_ensemble", "platform": "ensemble", "max_batch_size": max_batch, "input": crops,
        "output": output,
        "ensemble_scheduling": {"step": [
            {"model_name": f"{name}_pre", "model_version": -1,
             "input_map": {PRE_INPUT: PRE_INPUT}, "output_map": {PRE_OUTPUT: PRE_OUTPUT}},
            {"model_name": name, "model_version": -1,
             "input_map": {in_name: PRE_OUTPUT}, "output_map": {out_name: out_name}},
        ]},
        "parameters": string_params({**common, KEY_ENGINE: summary}),
    }
    files[f"{name}_pre"] = {"1/model.py": PRE_MODEL_PY.encode()}
    files[f"{name}_ensemble"] = {}
    return configs, files


def _write_models(repo: Path, names: list[str], configs: dict, files: dict, check) -> None:
    """Write each model folder beside the repository, ``check(staging)`` them, then rename each into place
    (the old one, if any, leaves first and comes back if the rename fails)."""
    repo.mkdir(parents=True, exist_ok=True)
    staging = repo.resolve().parent / f".{repo.resolve().name}.mvd-edge-staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        for n in names:
            _write_model_dir(staging, n, configs[n], files[n])
        check(staging)  # what was written is what the graph says
        for n in names:
            target, old = repo / n, staging / f"{n}.old"
            if target.exists():
                target.rename(old)
            try:
                (staging / n).rename(target)
            except OSError:
                if old.exists():
                    old.rename(target)
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)


# ------------------------------------------------------------------------------ checking a written model


def _tensor(cfg: dict, field: str, where: str) -> tuple[str, str, list[int]]:
    entries = cfg.get(field) or []
    if len(entries) != 1:
        raise EngineError(f"{where}: expected one {field}, got {len(entries)}")
    t = entries[0]
    return str(t.get("name")), str(t.get("data_type")), [int(d) for d in t.get("dims", [])]


def check_triton_model(repo_dir: str | Path, name: str, engine: str | Path | None = None) -> dict[str, dict]:
    """Check the Triton model ``name`` (and ``name_pre``/``name_ensemble`` where present) in ``repo_dir``.

    The engine's config must agree with the model file's graph (names, data types, dims without
    the batch dim, batch dimension dynamic; for a TensorRT plan the copied sidecar, and a
    ``max_batch_size`` within its profile) and the ``mvd_edge.*`` parameters with its preprocessing
    and embedding size; the pre and ensemble models must chain to it. ``engine``: also check the
    model file is a byte copy of it. Returns the parsed configs; raises EngineError naming the
    first disagreement.
    """
    repo = Path(repo_dir)
    cfg = read_config(repo / name)
    where = f"Triton model {name}"
    if cfg.get("name", name) != name:
        raise EngineError(f"{where}: config name {cfg.get('name')!r} is not its folder name")
    platform = cfg.get("platform")
    model_file = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}.get(str(platform))
    if model_file is None:
        raise EngineError(f"{where}: platform {platform!r} is not onnxruntime_onnx or tensorrt_plan")
    path = repo / name / "1" / model_file
    if not path.is_file():
        raise EngineError(f"{where}: {path} is missing")
    if engine is not None and sha256_file(engine) != sha256_file(path):
        raise EngineError(f"{where}: {path} is not a copy of {engine}")
    if model_file == "model.plan" and not sidecar_path(path).is_file():
        raise EngineError(f"{where}: a TensorRT plan needs its sidecar {sidecar_path(path).name} beside it")
    io = engine_io(path)
    if io["platform"] != platform:
        raise EngineError(f"{where}: platform {platform} but {path.name} is a {io['platform']} model")
    for field in ("input", "output"):
        for what, g, w in zip(("name", "data_type", "dims"), _tensor(cfg, field, where), io[field]):
            if g != w:
                raise EngineError(f"{where}: {field} {what} is {g!r} in config.pbtxt but {w!r} in the graph")
    mbs = int(cfg.get("max_batch_size", 0))
    if mbs < 1:
        raise EngineError(f"{where}: max_batch_size {mbs}; mvd-edge engines batch (max_batch_size >= 1)")
    if io["max_batch_limit"] is not None and mbs > io["max_batch_limit"]:
        raise EngineError(f"{where}: max_batch_size {mbs} exceeds the TensorRT profile max {io['max_batch_limit']}")
    for group in cfg.get("instance_group", []):
        if group.get("kind") not in ("KIND_CPU", "KIND_GPU") or int(group.get("count", 1)) < 1:
            raise EngineError(f"{where}: bad instance_group {group}")
        if platform == "tensorrt_plan" and group.get("kind") != "KIND_GPU":
            raise EngineError(f"{where}: a TensorRT plan needs KIND_GPU instances")
    batching = cfg.get("dynamic_batching")
    if batching is not None:
        if any(int(b) < 1 or int(b) > mbs for b in batching.get("preferred_batch_size", [])):
            raise EngineError(f"{where}: preferred_batch_size {batching['preferred_batch_size']} outside 1..{mbs}")
    spec, dim = spec_from_config(cfg, where)
    if spec != io["spec"]:
        raise EngineError(f"{where}: its {KEY_PREPROCESS} parameter {spec.to_dict()} is not the engine's "
                          f"{io['spec'].to_dict()}")
    if dim != io["embedding_dim"]:
        raise EngineError(f"{where}: its {KEY_EMBEDDING_DIM} parameter {dim} is not the engine's {io['embedding_dim']}")
    configs = {name: cfg}
    pre_dir, ens_dir = repo / f"{name}_pre", repo / f"{name}_ensemble"
    if pre_dir.exists() or ens_dir.exists():
        configs.update(_check_ensemble(repo, name, cfg, io))
    return configs


def _check_ensemble(repo: Path, name: str, cfg: dict, io: dict) -> dict[str, dict]:
    pre_name, ens_name = f"{name}_pre", f"{name}_ensemble"
    pre, ens = read_config(repo / pre_name), read_config(repo / ens_name)
    spec, mbs = io["spec"], int(cfg["max_batch_size"])
    hw3 = [spec.height, spec.width, 3]
    w = f"Triton model {pre_name}"
    if pre.get("backend") != "python" or not (repo / pre_name / "1" / "model.py").is_file():
        raise EngineError(f"{w}: expected a python-backend model with 1/model.py")
    if _tensor(pre, "input", w)[1:] != ("TYPE_UINT8", hw3):
        raise EngineError(f"{w}: input must be TYPE_UINT8 {hw3}, got {_tensor(pre, 'input', w)[1:]}")
    pre_out = _tensor(pre, "output", w)
    if pre_out[1:] != io["input"][1:]:
        raise EngineError(f"{w}: output {pre_out[1:]} does not feed the engine's input {io['input'][1:]}")
    if spec_from_config(pre, w)[0] != spec:
        raise EngineError(f"{w}: its {KEY_PREPROCESS} parameter is not the engine's preprocessing")
    w = f"Triton model {ens_name}"
    if ens.get("platform") != "ensemble":
        raise EngineError(f"{w}: platform must be 'ensemble', got {ens.get('platform')!r}")
    for c, n in ((pre, pre_name), (ens, ens_name)):
        if int(c.get("max_batch_size", 0)) > mbs:
            raise EngineError(f"Triton model {n}: max_batch_size {c.get('max_batch_size')} is more than {name}'s {mbs}")
    ens_in, ens_out = _tensor(ens, "input", w), _tensor(ens, "output", w)
    if ens_in[1:] != ("TYPE_UINT8", hw3) or ens_out[1:] != io["output"][1:]:
        raise EngineError(f"{w}: takes {ens_in[1:]} and gives {ens_out[1:]}; expected TYPE_UINT8 {hw3} -> "
                          f"{io['output'][1:]}")
    steps = (ens.get("ensemble_scheduling") or {}).get("step", [])
    if [s.get("model_name") for s in steps] != [pre_name, name]:
        raise EngineError(f"{w}: steps {[s.get('model_name') for s in steps]}; expected [{pre_name!r}, {name!r}]")
    first, second = steps
    if first.get("input_map") != {_tensor(pre, "input", w)[0]: ens_in[0]}:
        raise EngineError(f"{w}: step 1 input_map {first.get('input_map')} does not feed {ens_in[0]} to {pre_name}")
    mid = (first.get("output_map") or {}).get(pre_out[0])
    if mid is None or second.get("input_map") != {io["input"][0]: mid}:
        raise EngineError(f"{w}: {pre_name}'s output {pre_out[0]} does not reach {name}'s input {io['input'][0]}")
    if second.get("output_map") != {io["output"][0]: ens_out[0]}:
        raise EngineError(f"{w}: step 2 output_map {second.get('output_map')} does not give {ens_out[0]}")
    if spec_from_config(ens, w)[0] != spec:
        raise EngineError(f"{w}: its {KEY_PREPROCESS} parameter is not the engine's preprocessing")
    return {pre_name: pre, ens_name: ens}
