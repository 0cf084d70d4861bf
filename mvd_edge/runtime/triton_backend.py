"""Triton Inference Server backend: an :class:`Embedder` whose engine runs on a Triton server.

``load_embedder("triton://HOST:PORT/NAME")`` (port 8000 by default; ``.../NAME/VERSION`` for one
version) talks the KServe v2 HTTP protocol through ``tritonclient[http]`` (the ``triton`` extra).
On open it checks the server is ready and reads the model's metadata and config: input/output
names, shapes, ``max_batch_size`` and the ``mvd_edge.*`` parameters written by
:func:`mvd_edge.runtime.triton_repo.export_triton` (the preprocessing spec, the embedding size,
the engine's precision and operating point), so :meth:`embed` preprocesses exactly like every
other backend. Any disagreement between them is an :class:`EngineError` naming it.

Two model kinds are served:

* the engine model ``NAME`` (float32 ``[N, 3, H, W]`` in): crops are preprocessed here, as in
  every backend, and sent as float32;
* the ensemble ``NAME_ensemble`` (uint8 ``[N, H, W, 3]`` in): crops are only resized here (BGR,
  the spec's interpolation) and the server's ``NAME_pre`` model does the colour order and
  mean/std; a quarter of the bytes on the wire.

Which one a URL names is read from the model's input type. gRPC is not implemented.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from mvd_edge.core.errors import MissingExtra, UsageError
from mvd_edge.core.preprocess import check_crop
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError
from mvd_edge.runtime.triton_repo import KEY_ENGINE, spec_from_config

__all__ = ["DEFAULT_PORT", "TRITON_SCHEMES", "TritonEmbedder", "parse_triton_url"]

TRITON_SCHEMES = ("triton://", "triton+grpc://", "triton+http://")
DEFAULT_PORT = 8000
INSTALL_HINT = "pip install 'mvd-edge[triton]'"


def parse_triton_url(url: str) -> tuple[str, str, str]:
    """``triton://host[:port]/name[/version]`` -> (``host:port``, model name, version or "")."""
    parts = urlsplit(url)
    if parts.scheme == "triton+grpc":
        raise UsageError(f"{url}: gRPC is not implemented; use the HTTP endpoint, triton://HOST:8000/NAME")
    if parts.scheme not in ("triton", "triton+http"):
        raise UsageError(f"{url}: not a Triton URL; use triton://HOST:PORT/NAME")
    if parts.query or parts.fragment:
        raise UsageError(f"{url}: a Triton URL takes no ?query or #fragment")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise UsageError(f"{url}: bad port ({exc})") from exc
    host = parts.hostname
    path = [p for p in parts.path.split("/") if p]
    if not host or len(path) not in (1, 2):
        raise UsageError(f"{url}: expected triton://HOST:PORT/NAME or triton://HOST:PORT/NAME/VERSION")
    if len(path) == 2 and not path[1].isdigit():
        raise UsageError(f"{url}: the model version must be a number, got {path[1]!r}")
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}", path[0], path[1] if len(path) == 2 else ""


def _import_http():
    """``tritonclient.http`` and the errors a request can end with (the server's, the socket's, the HTTP parser's)."""
    try:
        import tritonclient.http as httpclient
        from geventhttpclient.response import HTTPParseError
        from tritonclient.utils import InferenceServerException
    except ImportError as exc:
        raise MissingExtra(f"the Triton backend needs tritonclient[http] (it is not importable: {exc}); "
                           f"{INSTALL_HINT}") from exc
    return httpclient, (InferenceServerException, OSError, HTTPParseError)


def _first_line(exc: BaseException) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    text = str(msg or type(exc).__name__).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _shape(entry: dict) -> list[int]:
    return [int(d) for d in entry.get("shape", entry.get("dims", []))]


class TritonEmbedder(Embedder):
    """An engine served by Triton (``triton://HOST:PORT/NAME``); see the module docstring.

    ``max_batch``: requests hold at most this many crops (default and upper bound: the model's
    ``max_batch_size``; larger lists are split). ``timeout``: seconds for connecting and for
    each request.
    """

    backend = "triton"

    def __init__(self, url: str, max_batch: int | None = None, timeout: float = 60.0):
        self.url = url
        self.address, self.model, self.version = parse_triton_url(url)
        self.timeout = float(timeout)
        self._http, self._errors = _import_http()
        self._local = threading.local()
        where = f"Triton at {self.address}"
        client = self._client()
        try:
            ready = client.is_server_ready()
        except self._errors as exc:  # connection refused, DNS, timeouts, an HTTP error status
            raise EngineError(f"cannot reach {where} ({_first_line(exc)}); is tritonserver running and serving "
                              f"HTTP on that port?") from exc
        if not ready:
            raise EngineError(f"{where} is up but not ready (/v2/health/ready); wait for its models to load")
        try:
            model_ready = client.is_model_ready(self.model, self.version)
        except self._errors as exc:
            raise EngineError(f"{where}: cannot ask for model {self.model!r} ({_first_line(exc)})") from exc
        if not model_ready:
            raise EngineError(f"{where} has no ready model {self.model!r}"
                              f"{f' version {self.version}' if self.version else ''}: check the name and "
                              "the server's model repository (export one with `mvd-edge export-triton`)")
        try:
            meta = client.get_model_metadata(self.model, self.version)
            config = client.get_model_config(self.model, self.version)
        except self._errors as exc:
            raise EngineError(f"{where}: cannot read model {self.model!r}'s metadata/config "
                              f"({_first_line(exc)})") from exc
        config = config.get("config", config)  # the gRPC-style wrapper, should a proxy add it
        spec, dim, info, batch = self._describe(meta, config)
        if max_batch is not None and max_batch > batch:
            raise EngineError(f"Triton model {self.model} takes at most {batch} crops a request (max_batch_size), "
                              f"{max_batch} were asked for")
        super().__init__(spec, dim, max_batch or batch, info)

    # -------------------------------------------------------------------------------- opening

    def _client(self):
        """One HTTP client per thread (the client's gevent hub belongs to the thread that made it)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._http.InferenceServerClient(url=self.address, connection_timeout=self.timeout,
                                                      network_timeout=self.timeout)
            self._local.client = client
        return client

    def _describe(self, meta: dict, config: dict):
        """Check the model's metadata against its config and ``mvd_edge.*`` parameters; name any mismatch."""
        where = f"Triton model {self.model} at {self.address}"
        spec, dim = spec_from_config(config, where)
        ins, outs = meta.get("inputs", []), meta.get("outputs", [])
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"{where} has {len(ins)} inputs and {len(outs)} outputs; an mvd-edge engine has one each")
        cfg_ins, cfg_outs = config.get("input", []), config.get("output", [])
        batch = int(config.get("max_batch_size", 0))
        if batch < 1:
            raise EngineError(f"{where} has max_batch_size {batch}: it does not batch, and mvd-edge engines "
                              "take a batch dimension; re-export it with `mvd-edge export-triton`")
        (inp,), (out,) = ins, outs
        for kind, m, c in (("input", inp, cfg_ins), ("output", out, cfg_outs)):
            if len(c) != 1 or c[0].get("name") != m.get("name"):
                raise EngineError(f"{where}: its metadata names {kind} {m.get('name')!r} but its config "
                                  f"{[e.get('name') for e in c]}")
            cfg_shape = [-1] + [int(d) for d in c[0].get("dims", [])]
            if _shape(m) != cfg_shape:
                raise EngineError(f"{where}: {kind} {m.get('name')} has shape {_shape(m)} in its metadata but "
                                  f"{cfg_shape} in its config")
        datatype, shape = inp.get("datatype"), _shape(inp)
        hw = (spec.height, spec.width)
        if datatype == "FP32":
            self.uint8_input = False
            want = [-1, 3, spec.height, spec.width]
            layout = "float32 [N, 3, H, W]"
        elif datatype == "UINT8":
            self.uint8_input = True
            want = [-1, spec.height, spec.width, 3]
            layout = "uint8 [N, H, W, 3] (an ensemble)"
        else:
            raise EngineError(f"{where}: input {inp.get('name')} is {datatype}; expected FP32 (the engine) or "
                              "UINT8 (the ensemble)")
        if shape != want:
            raise EngineError(f"{where}: input {inp.get('name')} has shape {shape} but its mvd_edge.preprocess "
                              f"parameter says {hw[0]}x{hw[1]} ({layout}: {want}); the parameter and the model "
                              "disagree: re-export with `mvd-edge export-triton`")
        out_shape = _shape(out)
        if out.get("datatype") != "FP32" or len(out_shape) != 2:
            raise EngineError(f"{where}: output {out.get('name')} is {out.get('datatype')} {out_shape}; expected "
                              "FP32 [N, D]")
        if dim is None:
            dim = out_shape[1]
        if out_shape[1] != dim or dim < 1:
            raise EngineError(f"{where}: output {out.get('name')} has {out_shape[1]} features but its "
                              f"mvd_edge.embedding_dim parameter says {dim}")
        self.input_name, self.output_name = inp["name"], out["name"]
        info: dict = {}
        engine_entry = (config.get("parameters") or {}).get(KEY_ENGINE)
        if isinstance(engine_entry, dict) and "string_value" in engine_entry:
            try:
                info.update(json.loads(engine_entry["string_value"]))
            except ValueError as exc:
                raise EngineError(f"{where}: its {KEY_ENGINE} parameter is not JSON ({exc})") from exc
        info.setdefault("precision", "fp32")
        info.update({"embedding_dim": dim, "max_batch": batch, "server": self.address, "triton_model": self.model,
                     "triton_platform": config.get("platform") or config.get("backend"),
                     "input": "uint8" if self.uint8_input else "float32", "device": "triton"})
        return spec, dim, info, batch

    # -------------------------------------------------------------------------------- inference

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[n, 3, H, W]`` (engine model) or uint8 BGR ``[n, H, W, 3]`` (ensemble) -> float32 ``[n, D]``."""
        want = np.uint8 if self.uint8_input else np.float32
        if x.dtype != want:
            raise TypeError(f"Triton model {self.model} takes {np.dtype(want).name} input, got {x.dtype}")
        inp = self._http.InferInput(self.input_name, list(x.shape), "UINT8" if self.uint8_input else "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(x), binary_data=True)
        out = self._http.InferRequestedOutput(self.output_name, binary_data=True)
        try:
            result = self._client().infer(self.model, [inp], model_version=self.version, outputs=[out])
            y = result.as_numpy(self.output_name)
        except self._errors as exc:
            raise EngineError(f"Triton at {self.address}, model {self.model}: inference failed "
                              f"({_first_line(exc)})") from exc
        if y is None:
            raise EngineError(f"Triton at {self.address}, model {self.model}: no output {self.output_name!r} "
                              "in the response")
        return y.astype(np.float32, copy=False)

    def _resize_bgr(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops of any size -> uint8 BGR ``[n, H, W, 3]`` at the spec's size and interpolation (the ensemble's input)."""
        import cv2

        batch = np.empty((len(crops), self.spec.height, self.spec.width, 3), np.uint8)
        for i, crop in enumerate(crops):
            batch[i] = cv2.resize(check_crop(crop, i), (self.spec.width, self.spec.height),
                                  interpolation=self.spec.cv2_interpolation)
        return batch

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """For an ensemble the crops are only resized here (the server normalises); otherwise as every backend."""
        return self._resize_bgr(crops) if self.uint8_input else super().prepare(crops)

    def close(self) -> None:
        """Close this thread's connection (clients of other threads close when they are collected)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            client.close()
