"""The deployment formats: one table of what mvd-edge writes and runs, and lookups into it.

Each row is one kind of file (or address): its name, the file-name endings mvd-edge gives it,
the runtime backend that opens it, the precisions it holds, and what it needs to run (Python
modules, a CUDA device). Everything that picks a backend, names an artefact or says why a
combination cannot run reads this table: :func:`mvd_edge.runtime.load_embedder`, engine
building (:mod:`mvd_edge.runtime.engine`, ``mvd-edge build-engine``), INT8 graph names
(:mod:`mvd_edge.quant`), ``mvd-edge bench``'s plan, and the ``--help`` texts that list them.

Light on purpose (standard library and :mod:`mvd_edge.core.spec` only): the edge runtime and
``--help`` read it without torch, onnx or OpenCV.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from mvd_edge.core.errors import UsageError
from mvd_edge.core.spec import PRECISIONS

# kinds of rows
CHECKPOINT, GRAPH, ENGINE, SERVED = "checkpoint", "graph", "engine", "served"


@dataclass(frozen=True)
class Format:
    """One deployment format (a row of :data:`FORMATS`)."""

    name: str
    kind: str  # checkpoint | graph (an ONNX graph) | engine (built by build-engine, with a sidecar) | served
    suffixes: tuple[str, ...]  # file-name endings (or address schemes, for served); the first is what mvd-edge writes
    backend: str  # the runtime backend that opens it
    precisions: tuple[str, ...]
    modules: tuple[str, ...]  # Python modules needed to run it
    title: str = ""  # the backend's name for people (what runs checkpoints and engines has one)
    cuda: tuple[str, ...] = ()  # what needs a CUDA device: "*" (everything), a precision, or "fused-head"
    fused_head: bool = False  # can hold / run the fused embedding head (mvd::FusedHead op, Triton kernel)
    int8_flavours: tuple[str, ...] = ()  # INT8 Q/DQ flavours it holds or runs; an engine's first is what it is built from
    reads_onnx: bool = False  # an engine backend that also runs the bare ONNX graphs as they are (load_embedder(backend=))

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def needs_cuda(self, precision: str, fused: bool = False) -> bool:
        return "*" in self.cuda or precision in self.cuda or (fused and "fused-head" in self.cuda)

    def missing_modules(self) -> list[str]:
        """The modules it needs that are not installed here."""
        return [m for m in self.modules if not _installed(m)]


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already, or blocked (None)
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


FORMATS: tuple[Format, ...] = (
    Format("checkpoint", CHECKPOINT, (".pt",), "torch", ("fp32", "fp16"), ("torch",), "torch",
           cuda=("fp16", "fused-head"), fused_head=True),
    Format("onnx", GRAPH, (".onnx",), "ort", ("fp32",), ("onnxruntime",), fused_head=True),
    Format("onnx-fp16", GRAPH, (".fp16.onnx",), "ort", ("fp16",), ("onnxruntime",)),
    Format("onnx-int8-trt", GRAPH, (".int8-trt.onnx",), "ort", ("int8",), ("onnxruntime",),
           int8_flavours=("trt",)),
    Format("onnx-int8-cpu", GRAPH, (".int8-cpu.onnx",), "ort", ("int8",), ("onnxruntime",),
           int8_flavours=("cpu",)),
    Format("ort", ENGINE, (".ort.onnx",), "ort", PRECISIONS, ("onnxruntime",), "ONNX Runtime",
           int8_flavours=("cpu", "trt"), reads_onnx=True),
    Format("trt", ENGINE, (".engine",), "trt", PRECISIONS, ("tensorrt",), "TensorRT",
           cuda=("*",), fused_head=True, int8_flavours=("trt",)),
    # the ONNX graph itself (OpenVINO reads ONNX), checked and described by its sidecar
    Format("openvino", ENGINE, (".ov.onnx",), "openvino", PRECISIONS, ("openvino",), "OpenVINO",
           int8_flavours=("cpu", "trt"), reads_onnx=True),
    Format("triton", SERVED, ("triton://", "triton+grpc://", "triton+http://"), "triton", PRECISIONS,
           ("tritonclient",), "Triton Inference Server"),
)

#: INT8 Q/DQ flavours, in the order ``mvd-edge int8`` writes them
INT8_FLAVOURS: tuple[str, ...] = tuple(f.int8_flavours[0] for f in FORMATS if f.kind == GRAPH and f.int8_flavours)
#: what ``build-engine --backend`` takes
ENGINE_BACKENDS: tuple[str, ...] = tuple(f.backend for f in FORMATS if f.kind == ENGINE)
#: what ``bench --backends`` takes: the checkpoint's torch and every engine backend
BENCH_BACKENDS: tuple[str, ...] = tuple(f.backend for f in FORMATS if f.kind in (CHECKPOINT, ENGINE))


def by_name(name: str) -> Format:
    for f in FORMATS:
        if f.name == name:
            return f
    raise _unknown("format", name, [f.name for f in FORMATS])


def for_path(path: str | Path, kinds: tuple[str, ...] = (CHECKPOINT, GRAPH, ENGINE, SERVED)) -> Format | None:
    """The format (of ``kinds``) a file name or a served address says, by its longest matching ending;
    None if none."""
    text = str(path)
    served = [f for f in FORMATS if f.kind == SERVED and SERVED in kinds and text.startswith(f.suffixes)]
    if served:
        return served[0]
    name = Path(text).name
    hits = [(len(s), f) for f in FORMATS if f.kind in kinds and f.kind != SERVED for s in f.suffixes
            if name.endswith(s)]
    return max(hits, key=lambda h: h[0])[1] if hits else None


def for_backend(backend: str, what: str = "backend", kinds: tuple[str, ...] = (CHECKPOINT, ENGINE)) -> Format:
    """The row that runs ``backend``'s variants: the checkpoint for torch, else the backend's engine."""
    for f in FORMATS:
        if f.backend == backend and f.kind in kinds:
            return f
    raise _unknown(what, backend, [f.backend for f in FORMATS if f.kind in kinds])


def engine_format(backend: str, what: str = "backend") -> Format:
    """The engine row of ``backend`` (``build-engine --backend``)."""
    return for_backend(backend, what, kinds=(ENGINE,))


def check_precision(precision: str, what: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise _unknown(what, precision, PRECISIONS)
    return precision


def _unknown(what: str, value: object, choices) -> UsageError:
    """``--backend 'x': choose one of ...`` for an option, ``unknown backend 'x'; choose one of ...`` otherwise."""
    head = f"{what} {value!r}:" if what.startswith("--") else f"unknown {what} {value!r};"
    return UsageError(f"{head} choose one of {', '.join(choices)}")


def graph_format(precision: str, flavour: str | None = None) -> Format:
    """The ONNX graph row of ``precision`` (INT8: of ``flavour``)."""
    check_precision(precision)
    for f in FORMATS:
        if f.kind == GRAPH and precision in f.precisions and (precision != "int8" or flavour in f.int8_flavours):
            return f
    raise _unknown("INT8 flavour", flavour, INT8_FLAVOURS)


def graph_path(folder: str | Path, stem: str, precision: str, flavour: str | None = None) -> Path:
    """Where ``export`` / ``fp16`` / ``int8`` write the ``precision`` graph of ``stem`` in ``folder``."""
    return Path(folder) / f"{stem}{graph_format(precision, flavour).suffix}"


def engine_path(graph: str | Path, backend: str) -> Path:
    """The engine ``build-engine`` writes from ``graph`` by default: beside it, its name plus the
    engine's ending (``model.int8-cpu.onnx`` -> ``model.int8-cpu.ort.onnx``)."""
    graph = Path(graph)
    return graph.with_name(graph.name.removesuffix(".onnx") + engine_format(backend).suffix)


def skip_reason(backend: str, precision: str, fused: bool, cuda: bool) -> str | None:
    """Why ``backend`` cannot run ``precision`` (with the fused head when ``fused``) here; None if it can."""
    fmt = for_backend(backend)
    check_precision(precision)
    if precision not in fmt.precisions:
        others = [f.backend for f in FORMATS if f.kind == ENGINE and precision in f.precisions]
        return f"the {backend} backend has no {precision.upper()} path ({precision} runs on {', '.join(others)})"
    if fused and not fmt.fused_head:
        fused_ok = [f.backend for f in FORMATS if f.kind in (CHECKPOINT, ENGINE) and f.fused_head]
        return f"{fmt.title} cannot run the mvd::FusedHead op (only {', '.join(fused_ok)})"
    missing = fmt.missing_modules()
    if missing:
        return f"{fmt.title} not installed (no {', '.join(missing)} module)"
    if not cuda and fmt.needs_cuda(precision, fused):
        what = "" if "*" in fmt.cuda else f" {precision}" if precision in fmt.cuda else " with the fused head"
        return f"{fmt.title}{what} needs a CUDA device"
    if fused and fmt.kind == ENGINE and not graph_format(precision, fmt.int8_flavours[0]).fused_head:
        return "fused-head graphs are exported in FP32 only (FP16/INT8 graphs need ONNX Runtime to build)"
    return None


def help_list(names: tuple[str, ...] | list[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


#: ``build-engine --backend auto``: the fastest engine backend measured for this kind of machine
AUTO = "auto"
_X86 = ("x86_64", "amd64", "i686", "x86")


def auto_backend(device: str) -> tuple[str, str]:
    """``(backend, why)`` for ``build-engine --backend auto`` on ``device``: OpenVINO on an x86 CPU where it
    is installed (measured 1.1-2.3x faster than ONNX Runtime on 16 of 18 re-id rows, level on the other
    two: docs/bench_backends), else ONNX Runtime."""
    if device != "cpu":
        return "ort", f"OpenVINO runs on the CPU only, and --device is {device}"
    if platform.machine().lower() not in _X86:
        return "ort", f"OpenVINO was measured against ONNX Runtime on x86 CPUs only, this is {platform.machine()}"
    if by_name("openvino").missing_modules():
        return "ort", "OpenVINO is not installed (pip install 'mvd-edge[openvino]' for its 1.1-2.3x on x86 CPUs)"
    return "openvino", ("OpenVINO measured 1.1-2.3x faster than ONNX Runtime on this project's re-id graphs on an "
                        "x86 CPU (docs/bench_backends)")


def backend_help(backends: tuple[str, ...] = ENGINE_BACKENDS) -> str:
    """``"ort (ONNX Runtime) or trt (TensorRT)"``."""
    return help_list([f"{b} ({for_backend(b).title})" for b in backends])
