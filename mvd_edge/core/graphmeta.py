"""The graph metadata contract between export, quantisation, engines and the runtime.

Every ONNX graph mvd-edge writes carries ``mvd_edge.*`` string entries in its
``metadata_props``. :class:`GraphMeta` is the one typed, frozen view of them: export builds
one, quantisation derives the INT8/FP16 one from the FP32 one (:meth:`GraphMeta.derive_int8`,
:meth:`GraphMeta.derive_fp16`, both ``dataclasses.replace``), and engine building and the
runtime read it back (:meth:`GraphMeta.from_session`, :meth:`GraphMeta.from_onnx`).

Each field is stored under ``mvd_edge.<field name>`` in the encodings mvd-edge has always written
(JSON for lists, mappings and the preprocessing spec, ``"1"``/``"0"`` for flags, decimal strings
for integers), so older graphs still read; ``mvd_edge.meta_schema`` holds the integer
:attr:`GraphMeta.SCHEMA_VERSION`. A graph without it is schema 1 (the key set was the same); a
graph with a larger one was written by a newer mvd-edge and is refused rather than half-understood.

Reading needs neither torch nor the ``onnx`` package (the edge install has only onnxruntime), nor
a graph ONNX Runtime can load (the fused-head plugin op): a minimal protobuf reader of the few
fields needed does it (:func:`read_onnx_header`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.core.spec import PRECISIONS

PREFIX = "mvd_edge."
SCHEMA_KEY = "mvd_edge.meta_schema"

K_PREPROCESS = "mvd_edge.preprocess"
K_PRECISION = "mvd_edge.precision"
K_STUDENT = "mvd_edge.student_of"  # optional: a one-pass student's teacher (see mvd_edge.train.distill)
#: copies of parts of the preprocessing spec, written beside it for humans and old readers
K_INPUT_SIZE, K_MEAN, K_STD, K_COLOR_ORDER = (PREFIX + k for k in ("input_size", "mean", "std", "color_order"))

#: Written by every export; a graph lacking one of them was not exported by mvd-edge.
REQUIRED_FIELDS = ("version", "recipe", "preprocess", "embedding_dim", "checkpoint_sha256", "backbone", "fused_head",
                   "precision")
_INT8_FIELDS = ("int8_flavour", "int8_activation_type", "int8_weight_bits", "int8_include_head",
                "int8_excluded_layers", "calib_method", "calib_params", "calib_ranges_key", "calib_manifest_sha256",
                "calib_crops")
#: the fields a graph of each precision carries besides the required ones
PRECISION_FIELDS = {"fp32": (), "fp16": ("fp16_kept_fp32", "source_onnx_sha256"),
                    "int8": (*_INT8_FIELDS, "source_onnx_sha256")}
#: how a field is encoded (the name of the :class:`_PropReader` method that decodes it); others are text
_ENCODINGS = {"embedding_dim": "integer", "int8_weight_bits": "integer", "calib_crops": "integer",
              "fused_head": "flag", "int8_include_head": "flag", "int8_excluded_layers": "str_list",
              "fp16_kept_fp32": "str_list", "calib_params": "mapping", "student_of": "mapping",
              "preprocess": "spec"}


class MetadataError(MvdEdgeError, ValueError):
    """An ONNX graph's ``mvd_edge.*`` metadata is missing, malformed or from a newer mvd-edge."""


def _encode(name: str, value: Any) -> str:
    kind = _ENCODINGS.get(name)
    if kind == "flag":
        return "1" if value else "0"
    if kind == "str_list":
        return json.dumps(list(value))
    if kind == "mapping":
        return json.dumps(dict(value), sort_keys=True)
    return str(value)


@dataclass(frozen=True)
class GraphMeta:
    """The typed ``mvd_edge.*`` metadata of one exported (FP32, FP16 or INT8) graph.

    The INT8 fields are set exactly when ``precision == "int8"``, ``fp16_kept_fp32`` exactly
    when ``precision == "fp16"``, ``source_onnx_sha256`` (the FP32 graph a precision graph was
    made from) for both; otherwise they are None.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    version: str  # mvd-edge version that exported the FP32 graph
    recipe: str
    preprocess: PreprocessSpec
    embedding_dim: int
    checkpoint_sha256: str
    backbone: str
    fused_head: bool = False
    precision: str = "fp32"
    # INT8 (precision == "int8")
    int8_flavour: str | None = None
    int8_activation_type: str | None = None
    int8_weight_bits: int | None = None
    int8_include_head: bool | None = None
    int8_excluded_layers: tuple[str, ...] | None = None
    calib_method: str | None = None
    calib_params: Mapping[str, Any] | None = field(default=None, hash=False)
    calib_ranges_key: str | None = None
    calib_manifest_sha256: str | None = None
    calib_crops: int | None = None
    # FP16 (precision == "fp16")
    fp16_kept_fp32: tuple[str, ...] | None = None
    # INT8 and FP16
    source_onnx_sha256: str | None = None
    # a one-pass student (``mvd-edge distill``): what it was distilled from; None for MVD itself
    student_of: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        """Normalise containers (lists -> tuples, params -> read-only mapping) and check consistency."""
        if not isinstance(self.preprocess, PreprocessSpec):
            raise TypeError(f"GraphMeta.preprocess must be a PreprocessSpec, got {type(self.preprocess).__name__}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        if int(self.embedding_dim) <= 0:
            raise ValueError(f"embedding_dim must be positive, got {self.embedding_dim}")
        object.__setattr__(self, "embedding_dim", int(self.embedding_dim))
        for name in ("int8_excluded_layers", "fp16_kept_fp32"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str):
                    raise TypeError(f"GraphMeta.{name} must be a sequence of node names, not a string")
                object.__setattr__(self, name, tuple(str(v) for v in value))
        for name in ("calib_params", "student_of"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        int8_set = [n for n in _INT8_FIELDS if getattr(self, n) is not None]
        if self.precision == "int8":
            missing = [n for n in _INT8_FIELDS if getattr(self, n) is None]
            if missing:
                raise ValueError(f"an int8 GraphMeta needs {', '.join(missing)}")
        elif int8_set:
            raise ValueError(f"a {self.precision} GraphMeta cannot carry INT8 fields ({', '.join(int8_set)})")
        if (self.precision == "fp16") != (self.fp16_kept_fp32 is not None):
            raise ValueError("fp16_kept_fp32 is set exactly for precision 'fp16'")
        if (self.precision != "fp32") != (self.source_onnx_sha256 is not None):
            raise ValueError("source_onnx_sha256 is set exactly for fp16/int8 graphs (the FP32 graph they come from)")

    # ------------------------------------------------------------------ encoding

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries, in the order and encodings mvd-edge has always written them."""
        spec = self.preprocess
        props: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "preprocess":
                props[K_INPUT_SIZE] = json.dumps([spec.height, spec.width])
                props[K_PREPROCESS] = json.dumps(spec.to_dict())
                props.update({K_MEAN: json.dumps(list(spec.mean)), K_STD: json.dumps(list(spec.std)),
                              K_COLOR_ORDER: spec.color_order})
            elif value is not None:
                props[PREFIX + f.name] = _encode(f.name, value)
        props[SCHEMA_KEY] = str(self.SCHEMA_VERSION)
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path = "<metadata>") -> "GraphMeta":
        """Parse ``metadata_props`` (any extra non-``mvd_edge.`` keys are ignored).

        Raises :class:`MetadataError` naming ``source`` and the key when a required key is
        missing or malformed, or when the graph was written with a newer metadata schema.
        """
        r = _PropReader(props, str(source))
        r.check_schema(cls.SCHEMA_VERSION)
        missing = [PREFIX + n for n in REQUIRED_FIELDS if PREFIX + n not in props]
        if missing:
            hint = ("it has no mvd-edge metadata at all" if not any(k.startswith(PREFIX) for k in props)
                    else f"also missing: {', '.join(missing[1:])}" if len(missing) > 1 else "")
            raise MetadataError(f"{source}: missing metadata key {missing[0]!r} (not exported by mvd-edge? "
                                f"export it with `mvd-edge export`){'; ' + hint if hint else ''}")
        precision = r.text(K_PRECISION)
        if precision not in PRECISIONS:
            raise MetadataError(f"{source}: metadata key {K_PRECISION!r} is {precision!r}, expected one of "
                                f"{', '.join(PRECISIONS)}")
        r.require([PREFIX + n for n in PRECISION_FIELDS[precision]], f"an {precision} graph")
        names = [*REQUIRED_FIELDS, *PRECISION_FIELDS[precision], *(["student_of"] if K_STUDENT in props else [])]
        kw = {n: r.field(n) for n in names}
        if kw["embedding_dim"] <= 0:
            raise MetadataError(f"{source}: metadata key 'mvd_edge.embedding_dim' must be positive, "
                                f"got {kw['embedding_dim']}")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise MetadataError(f"{source}: inconsistent mvd-edge metadata: {exc}") from exc

    # ------------------------------------------------------------------ ONNX files and sessions

    def write_to(self, model_proto: Any) -> None:
        """Replace the ``mvd_edge.*`` entries of ``model_proto.metadata_props`` with this metadata.

        Entries under other keys are kept (they are not this contract's); entries under
        ``mvd_edge.`` this class does not write are dropped, since a derived graph must not
        carry stale facts about its source.
        """
        keep = [(p.key, p.value) for p in model_proto.metadata_props if not p.key.startswith(PREFIX)]
        del model_proto.metadata_props[:]
        for k, v in [*keep, *self.to_props().items()]:
            entry = model_proto.metadata_props.add()
            entry.key, entry.value = k, v

    @classmethod
    def from_onnx(cls, path: str | Path) -> "GraphMeta":
        """Read the metadata of the ONNX file at ``path`` (works without the ``onnx`` package)."""
        return cls.from_props(read_metadata(path), source=path)

    @classmethod
    def from_session(cls, session: Any, source: str | Path | None = None) -> "GraphMeta":
        """The metadata of an ``onnxruntime.InferenceSession`` (``source``: the file, for messages)."""
        props = dict(session.get_modelmeta().custom_metadata_map)
        return cls.from_props(props, source=source if source is not None else "<onnxruntime session>")

    # ------------------------------------------------------------------ derivation

    def derive_int8(self, *, flavour: str, activation_type: str, weight_bits: int, include_head: bool,
                    excluded_layers: Sequence[str], calib_method: str, calib_params: Mapping[str, Any],
                    calib_ranges_key: str, calib_manifest_sha256: str, calib_crops: int,
                    source_onnx_sha256: str) -> "GraphMeta":
        """The metadata of an INT8 graph calibrated from this FP32 graph (model facts kept)."""
        self._require_fp32("INT8")
        return dataclasses.replace(
            self, precision="int8", int8_flavour=flavour, int8_activation_type=activation_type,
            int8_weight_bits=int(weight_bits), int8_include_head=bool(include_head),
            int8_excluded_layers=tuple(excluded_layers), calib_method=calib_method, calib_params=dict(calib_params),
            calib_ranges_key=calib_ranges_key, calib_manifest_sha256=calib_manifest_sha256,
            calib_crops=int(calib_crops), source_onnx_sha256=source_onnx_sha256)

    def derive_fp16(self, *, kept_fp32: Sequence[str], source_onnx_sha256: str) -> "GraphMeta":
        """The metadata of an FP16 graph converted from this FP32 graph (model facts kept)."""
        self._require_fp32("FP16")
        return dataclasses.replace(self, precision="fp16", fp16_kept_fp32=tuple(kept_fp32),
                                   source_onnx_sha256=source_onnx_sha256)

    def _require_fp32(self, target: str) -> None:
        if self.precision != "fp32":
            raise UsageError(f"an {target} graph is made from the FP32 export, not from a {self.precision} graph")


class _PropReader:
    """Typed access to raw props with errors that name the file and the key."""

    def __init__(self, props: Mapping[str, str], source: str):
        self.props, self.source = props, source

    def _bad(self, key: str, why: str) -> MetadataError:
        return MetadataError(f"{self.source}: metadata key {key!r} {why}")

    def check_schema(self, known: int) -> None:
        raw = self.props.get(SCHEMA_KEY)
        if raw is None:
            return  # written before the key existed: schema 1, the same key set
        try:
            schema = int(raw)
        except ValueError:
            raise self._bad(SCHEMA_KEY, f"is {raw!r}, not an integer") from None
        if schema > known:
            raise self._bad(SCHEMA_KEY, f"is {schema}: the graph was written by a newer mvd-edge (metadata schema "
                                        f"{schema}); this one reads schema {known} and older, upgrade mvd-edge")
        if schema < 1:
            raise self._bad(SCHEMA_KEY, f"is {schema}; schemas start at 1")

    def require(self, keys: Sequence[str], what: str) -> None:
        missing = [k for k in keys if k not in self.props]
        if missing:
            raise self._bad(missing[0], f"is missing, which {what} must carry"
                                        + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))

    def field(self, name: str) -> Any:
        """The field ``name``, decoded from its key as it is encoded (:data:`_ENCODINGS`)."""
        return getattr(self, _ENCODINGS.get(name, "text"))(PREFIX + name)

    def text(self, key: str) -> str:
        value = self.props[key]
        if not isinstance(value, str) or not value:
            raise self._bad(key, "is empty")
        return value

    def integer(self, key: str) -> int:
        try:
            return int(self.props[key])
        except ValueError:
            raise self._bad(key, f"is {self.props[key]!r}, not an integer") from None

    def flag(self, key: str) -> bool:
        value = self.props[key]
        if value not in ("0", "1"):
            raise self._bad(key, f"is {value!r}, expected '0' or '1'")
        return value == "1"

    def json(self, key: str, kind: type) -> Any:
        try:
            value = json.loads(self.props[key])
        except json.JSONDecodeError as exc:
            raise self._bad(key, f"is not valid JSON ({exc})") from None
        if not isinstance(value, kind):
            raise self._bad(key, f"holds a JSON {type(value).__name__}, expected a {kind.__name__}")
        return value

    def mapping(self, key: str) -> dict:
        return self.json(key, dict)

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.json(key, list)
        if not all(isinstance(v, str) for v in value):
            raise self._bad(key, "must be a JSON list of strings")
        return tuple(value)

    def spec(self, key: str) -> PreprocessSpec:
        try:
            spec = PreprocessSpec.from_dict(self.json(key, dict))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad(key, f"is not a valid preprocessing spec: {exc}") from None
        # the copies, where present, must agree (a hand-edited file is caught here)
        copies = {K_INPUT_SIZE: [spec.height, spec.width], K_MEAN: list(spec.mean), K_STD: list(spec.std)}
        for copy, want in copies.items():
            if copy in self.props and self.json(copy, list) != want:
                raise self._bad(copy, f"is {self.props[copy]} but {key!r} says {want}")
        if K_COLOR_ORDER in self.props and self.props[K_COLOR_ORDER].upper() != spec.color_order:
            raise self._bad(K_COLOR_ORDER, f"is {self.props[K_COLOR_ORDER]!r} but {key!r} says "
                                           f"{spec.color_order!r}")
        return spec


# ---------------------------------------------------------------------- reading files


def read_metadata(onnx_path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict (values are JSON strings where structured).

    Read by :func:`read_onnx_header`, so it needs neither the ``onnx`` package (absent from the
    edge install) nor a loadable graph (ONNX Runtime cannot load one holding the TensorRT-only
    ``mvd::FusedHead`` op). The tests check it against ``onnx.load`` on every kind of graph.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        return read_onnx_header(path).metadata
    except ValueError as exc:
        raise MetadataError(f"{path}: not a readable ONNX file ({exc})") from exc


@dataclass(frozen=True)
class OnnxHeader:
    """What :func:`read_onnx_header` extracts: metadata entries and graph I/O names."""

    metadata: dict[str, str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


# protobuf field numbers (onnx.proto3): ModelProto.graph = 7, ModelProto.metadata_props = 14,
# StringStringEntryProto.key/value = 1/2, GraphProto.initializer/input/output = 5/11/12,
# ValueInfoProto.name = 1, TensorProto.name = 8
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_TENSOR_NAME = 8


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):
    """``(field number, wire type, value)`` of one protobuf message; value is a memoryview for wire type 2."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield num, wire, value


def _name_of(message: memoryview, field: int = 1) -> str:
    return next((bytes(v).decode() for n, w, v in _fields(message) if n == field and w == 2), "")


def read_onnx_header(onnx_path: str | Path) -> OnnxHeader:
    """Metadata entries and graph input/output names of an ONNX file, parsed without ``onnx``.

    A minimal protobuf wire-format walk over the three fields it needs, for graphs ONNX
    Runtime cannot load (the fused-head plugin op) on an install without the ``onnx``
    package. Raises ValueError when the file is not a well-formed ONNX model.
    """
    data = memoryview(Path(onnx_path).read_bytes())
    meta: dict[str, str] = {}
    inputs: list[str] = []
    outputs: list[str] = []
    weights: set[str] = set()
    saw_graph = False
    for num, wire, value in _fields(data):
        if wire != 2:
            continue
        if num == _MODEL_METADATA:
            entry = {n: bytes(v).decode() for n, w, v in _fields(value) if w == 2 and n in (1, 2)}
            meta[entry.get(1, "")] = entry.get(2, "")
        elif num == _MODEL_GRAPH:
            saw_graph = True
            for gnum, gwire, gval in _fields(value):
                if gwire == 2 and gnum == _GRAPH_INPUT:
                    inputs.append(_name_of(gval))
                elif gwire == 2 and gnum == _GRAPH_OUTPUT:
                    outputs.append(_name_of(gval))
                elif gwire == 2 and gnum == _GRAPH_INITIALIZER:
                    weights.add(_name_of(gval, _TENSOR_NAME))
    if not saw_graph:
        raise ValueError(f"{onnx_path} holds no ONNX graph")
    # older exporters list the weights among the graph inputs too; like ONNX Runtime, they are not inputs
    return OnnxHeader(meta, tuple(i for i in inputs if i not in weights), tuple(outputs))
