"""OpenVINO backend (CPU): runs the project's FP32 / FP16 / INT8 Q/DQ ONNX graphs as they are.

OpenVINO reads ONNX itself, so an OpenVINO "engine" is the graph copied beside its sidecar
(``build-engine --backend openvino``); no IR files. :class:`OvSession` wraps a compiled model
in the few calls of an ``onnxruntime.InferenceSession`` the project uses (``run``,
``get_inputs``, ``get_outputs``, ``get_modelmeta``), so the embedder's sidecar checks and the
detectors take either backend unchanged.

Inference precision is forced to f32 by default: on CPUs with bf16 (AVX512-BF16, AMX) OpenVINO
otherwise runs FP32 graphs in bf16 without a word (max abs difference 1.47 on outputs up to 316
on the packaged person detector; 9e-5 with f32). ``openvino`` is an optional extra, imported
when a model is opened.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mvd_edge.core.errors import UsageError, require
from mvd_edge.core.graphmeta import read_onnx_header
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.ort_backend import embedder_facts
from mvd_edge.runtime.sidecar import EngineError

#: OpenVINO's ``INFERENCE_PRECISION_HINT`` values this backend takes (f32: what the graph says)
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")
DEVICES = {"cpu": "CPU"}


def import_openvino():
    """``openvino``, or the one-line :class:`~mvd_edge.core.errors.MissingExtra` naming the extra."""
    return require("openvino", "openvino")


def openvino_version() -> str:
    return str(import_openvino().__version__).split("-")[0]


def ov_config(threads: int | None = None, inference_precision: str = "f32") -> dict:
    """The compile properties: one stream, latency hint, ``threads`` inference threads (None: OpenVINO's
    default, every core), and the inference precision (f32 unless asked)."""
    if inference_precision not in INFERENCE_PRECISIONS:
        raise UsageError(f"unknown OpenVINO inference precision {inference_precision!r}; choose one of "
                         f"{', '.join(INFERENCE_PRECISIONS)}")
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": inference_precision}
    if threads:
        if int(threads) < 1:
            raise UsageError(f"threads must be >= 1, got {threads}")
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    return config


class _SignalStack(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_SS_DISABLE = 2
_OWN_SIGNAL_STACKS: list = []  # alternate stacks installed by keep_signal_stack: never freed


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Give the calling thread back its signal alternate stack after OpenVINO swapped it (Linux).

    Why: OpenVINO's CPU plugin gives the thread that first compiles on a ``Core`` an alternate stack
    of its own (for AMX's large signal frames) and, when the ``Core`` is destroyed, restores the old
    one and unmaps its own -- on whichever thread destroys it. Python's garbage collector frees it
    on any thread, so the compiling thread can be left with an unmapped alternate stack; its next
    signal whose handler runs there (CPython installs handlers with ``SA_ONSTACK``, e.g. the
    SIGCHLD handler torch's DataLoader sets) then kills the process with SIGSEGV. This is what
    crashed the test suite in its first subprocess after the OpenVINO tests (2026-12-08;
    ``tests/test_openvino_backend.py`` reproduces it). The old stack is put back when it is at least
    as large as OpenVINO's; otherwise one of that size that is never freed."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    libc.sigaltstack(None, ctypes.byref(before))
    try:
        yield
    finally:
        after = _SignalStack()
        libc.sigaltstack(None, ctypes.byref(after))
        if after.ss_sp != before.ss_sp:
            keep = before
            if before.ss_flags & _SS_DISABLE or before.ss_size < after.ss_size:
                _OWN_SIGNAL_STACKS.append(ctypes.create_string_buffer(after.ss_size))
                keep = _SignalStack(ctypes.addressof(_OWN_SIGNAL_STACKS[-1]), 0, after.ss_size)
            libc.sigaltstack(ctypes.byref(keep), None)


class OvSession:
    """A compiled OpenVINO model with the ``onnxruntime.InferenceSession`` calls the project uses."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 inference_precision: str = "f32"):
        if device not in DEVICES:
            raise UsageError(f"unknown OpenVINO device {device!r}; this backend runs on {', '.join(DEVICES)}")
        config = ov_config(threads, inference_precision)
        ov = import_openvino()
        self.path = Path(path)
        try:
            with keep_signal_stack():
                core = ov.Core()
                model = core.read_model(str(path))
                self.compiled = core.compile_model(model, DEVICES[device], config)
        except Exception as exc:  # OpenVINO raises RuntimeError / its own types with multi-line text
            raise EngineError(f"OpenVINO cannot load {path}: {str(exc).strip().splitlines()[0]}") from exc
        self.config = config
        self._inputs = [_port(p) for p in self.compiled.inputs]
        self._outputs = [_port(p) for p in self.compiled.outputs]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: calls from several threads take turns
        self._meta: SimpleNamespace | None = None

    def get_inputs(self) -> list[SimpleNamespace]:
        return list(self._inputs)

    def get_outputs(self) -> list[SimpleNamespace]:
        return list(self._outputs)

    def get_modelmeta(self) -> SimpleNamespace:
        """The ONNX graph's ``metadata_props`` (read from the file: OpenVINO does not keep them)."""
        if self._meta is None:
            try:
                props = dict(read_onnx_header(self.path).metadata)
            except (OSError, ValueError):
                props = {}
            self._meta = SimpleNamespace(custom_metadata_map=props)
        return self._meta

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        """Like ``InferenceSession.run``: ``output_names`` None for every output, in the graph's order."""
        names = [o.name for o in self._outputs]
        wanted = range(len(names)) if output_names is None else [names.index(n) for n in output_names]
        with self._lock:
            self._request.infer({i.name: np.ascontiguousarray(feeds[i.name]) for i in self._inputs})
            return [self._request.get_output_tensor(k).data.copy() for k in wanted]


def _port(port) -> SimpleNamespace:
    """An OpenVINO port as ONNX Runtime's NodeArg: ``name`` and ``shape`` (ints, a string for a dynamic dim)."""
    shape = [int(d.get_length()) if d.is_static else f"d{k}" for k, d in enumerate(port.get_partial_shape())]
    return SimpleNamespace(name=port.get_any_name(), shape=shape)


class OvEmbedder(Embedder):
    """An mvd-edge ONNX graph (or an OpenVINO engine: the graph + sidecar) run by OpenVINO on the CPU.

    ``threads``: OpenVINO's inference threads (like ONNX Runtime's intra-op threads; None: all cores).
    ``inference_precision``: f32 (default: what the graph holds), bf16 or f16 (OpenVINO's hint)."""

    backend = "openvino"

    def __init__(self, path: str | Path, info: dict | None = None, device: str = "cpu", threads: int | None = None,
                 max_batch: int = 64, inference_precision: str | None = None):
        info = dict(info or {})
        hint = inference_precision or info.get("ov_inference_precision", "f32")
        self.session = OvSession(path, device=device, threads=threads, inference_precision=hint)
        spec, dim = embedder_facts(self.session, info, path)  # an engine's sidecar checked against its graph
        info.update({"device": device, "ov_inference_precision": hint})
        if threads:
            info["threads"] = int(threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        super().__init__(spec, dim, int(info.get("max_batch", max_batch)), info)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)
