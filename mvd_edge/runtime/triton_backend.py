"""KServe v2 backend: an :class:`Embedder` whose engine runs on Triton or another v2 HTTP server.

``load_embedder("triton://HOST:PORT/NAME")`` (port 8000 by default; ``.../NAME/VERSION`` for one
version; ``?sidecar=PATH`` for the engine's sidecar, see below) talks the KServe v2 (Open
Inference) HTTP protocol through ``tritonclient[http]`` (the ``triton`` extra). Only what the
protocol requires is assumed; Triton's extensions are used where the server has them:

* **settings**: the preprocessing spec, the embedding size and the engine facts (precision,
  operating point, ...) are the ``mvd_edge.*`` parameters written by
  :func:`mvd_edge.runtime.triton_repo.export_triton`. They are read from the model's config
  (``GET /v2/models/NAME/config``, Triton's model configuration extension) when the server
  answers it, else from the ``parameters`` of the model metadata (values: JSON strings, as v2
  parameters are; ``mvd_edge.max_batch`` may give the batch limit there), else from the engine
  sidecar named by ``?sidecar=PATH`` or ``sidecar=`` (the ``.json`` beside the engine, or the
  engine itself with its sidecar beside it). A sidecar given with a server that also has the
  settings must agree with it;
* **tensors**: binary (the ``binary_tensor_data`` extension) when the server metadata
  (``GET /v2``) lists it, else JSON;
* **versions**: a URL with a version uses the versioned endpoints; a server that refuses them
  is used unversioned where the model's metadata lists that version alone (or, for HTTP 501,
  lists none): the unversioned URLs then reach that version;
* **batching**: at most the config's ``max_batch_size``; without a config, the settings'
  ``max_batch``, else :data:`DEFAULT_MAX_BATCH` (``max_batch=`` sets it).

The model's metadata (input/output names and shapes) is checked against the settings (and the
config, when there is one); any disagreement is an :class:`EngineError` naming it. Two model
kinds are served:

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
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from mvd_edge.core.errors import MissingExtra, UsageError
from mvd_edge.core.preprocess import check_crop
from mvd_edge.core.util import read_json
from mvd_edge.deploy import formats
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import (
    SIDECAR_FORMAT,
    EngineError,
    check_sidecar_facts,
    read_sidecar,
    sidecar_path,
    validate_sidecar,
)
from mvd_edge.runtime.triton_repo import (
    KEY_EMBEDDING_DIM,
    KEY_ENGINE,
    KEY_PREPROCESS,
    engine_summary,
    spec_from_config,
    string_params,
)

__all__ = ["BINARY_EXTENSION", "DEFAULT_MAX_BATCH", "DEFAULT_PORT", "KEY_MAX_BATCH", "TritonEmbedder",
           "parse_triton_url", "url_sidecar"]

DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH = 32  # crops a request when neither a config nor the settings give a limit
BINARY_EXTENSION = "binary_tensor_data"  # listed in GET /v2 "extensions" by servers that take binary tensors
KEY_MAX_BATCH = "mvd_edge.max_batch"  # optional model-metadata parameter: the batch limit of a config-less server
INSTALL_HINT = "pip install 'mvd-edge[triton]'"
SETTINGS_HINT = (f"serve them as the model metadata's parameters {KEY_PREPROCESS}, {KEY_EMBEDDING_DIM} and "
                 f"{KEY_ENGINE} (JSON strings, as `mvd-edge export-triton` writes them in config.pbtxt), or give the "
                 "engine's sidecar: triton://HOST:PORT/NAME?sidecar=/path/to/ENGINE.json")
_ABSENT = ("400", "404", "405", "501")  # HTTP statuses of a server without an optional endpoint


def _split(url: str):
    parts = urlsplit(url)
    if f"{parts.scheme}://" not in formats.by_name("triton").suffixes:
        raise UsageError(f"{url}: not a Triton URL; use triton://HOST:PORT/NAME")
    if parts.scheme == "triton+grpc":
        raise UsageError(f"{url}: gRPC is not implemented; use the HTTP endpoint, triton://HOST:8000/NAME")
    if parts.fragment:
        raise UsageError(f"{url}: a Triton URL takes no #fragment")
    query = parse_qs(parts.query, keep_blank_values=True) if parts.query else {}
    if set(query) - {"sidecar"} or any(len(v) != 1 or not v[0] for v in query.values()):
        raise UsageError(f"{url}: the only query a Triton URL takes is ?sidecar=PATH (the engine's sidecar)")
    return parts, query


def parse_triton_url(url: str) -> tuple[str, str, str]:
    """``triton://host[:port]/name[/version][?sidecar=PATH]`` -> (``host:port``, model name, version or "")."""
    parts, _ = _split(url)
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


def url_sidecar(url: str) -> str | None:
    """The ``?sidecar=PATH`` of a Triton URL, or None."""
    return _split(url)[1].get("sidecar", [None])[0]


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


def _status(exc: BaseException) -> str | None:
    """The HTTP status of a server's error answer (None for socket and parser errors)."""
    status = getattr(exc, "status", None)
    return status() if callable(status) else None


def _first_line(exc: BaseException) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    msg = str(msg or "")
    status = _status(exc)
    if status and msg.startswith("an exception occurred in the client while decoding"):
        details = exc.debug_details() if callable(getattr(exc, "debug_details", None)) else None
        msg = str(details or "")  # an error body that is not v2's {"error": ...}: show it as it came
    text = msg.strip().splitlines()
    line = text[0][:300] if text else type(exc).__name__
    return f"HTTP {status}: {line}" if status else line


def _shape(entry: dict) -> list[int]:
    return [int(d) for d in entry.get("shape", entry.get("dims", []))]


def _sidecar_settings(path: str | Path) -> tuple[dict, dict]:
    """An engine sidecar (the ``.json``, or the engine with its sidecar beside it) -> (settings params, sidecar)."""
    p = Path(path)
    if p.suffix != ".json" or sidecar_path(p).is_file():
        info = read_sidecar(p)  # the engine is here too: check it is the one the sidecar describes
    else:
        info = read_json(p, EngineError, "an mvd-edge engine sidecar", fmt=SIDECAR_FORMAT,
                         hint="give the .json written beside the engine by `mvd-edge build-engine`")
        validate_sidecar(info, p)
        check_sidecar_facts(info, p)
    params = {KEY_PREPROCESS: info["preprocess"], KEY_EMBEDDING_DIM: str(info["embedding_dim"]),
              KEY_ENGINE: engine_summary(info)}
    if "max_batch" in info:
        params[KEY_MAX_BATCH] = info["max_batch"]
    return string_params(params), info


def _batch_limit(inp: dict, out: dict, config: dict | None, params: dict, where: str) -> tuple[int, bool]:
    """Crops a request and whether the server sets that limit: the config's ``max_batch_size`` (its tensors
    checked against the metadata's), else the settings' ``max_batch``, else :data:`DEFAULT_MAX_BATCH`."""
    if config is None:
        if KEY_MAX_BATCH not in params:
            return DEFAULT_MAX_BATCH, False
        try:
            batch = int(params[KEY_MAX_BATCH]["string_value"])
        except ValueError as exc:
            raise EngineError(f"{where}: its {KEY_MAX_BATCH} parameter is not an integer") from exc
        if batch < 1:
            raise EngineError(f"{where}: its {KEY_MAX_BATCH} parameter is {batch}; it must be >= 1")
        return batch, True
    batch = int(config.get("max_batch_size", 0))
    if batch < 1:
        raise EngineError(f"{where} has max_batch_size {batch}: it does not batch, and mvd-edge engines "
                          "take a batch dimension; re-export it with `mvd-edge export-triton`")
    for kind, m, c in (("input", inp, config.get("input", [])), ("output", out, config.get("output", []))):
        if len(c) != 1 or c[0].get("name") != m.get("name"):
            raise EngineError(f"{where}: its metadata names {kind} {m.get('name')!r} but its config "
                              f"{[e.get('name') for e in c]}")
        cfg_shape = [-1] + [int(d) for d in c[0].get("dims", [])]
        if _shape(m) != cfg_shape:
            raise EngineError(f"{where}: {kind} {m.get('name')} has shape {_shape(m)} in its metadata but "
                              f"{cfg_shape} in its config")
    return batch, True


def _check_input(inp: dict, spec, where: str, source: str, fix: str) -> bool:
    """Check the model's input against the spec's size (``source``: where the spec came from): float32
    ``[-1, 3, H, W]`` (the engine; returns False) or uint8 ``[-1, H, W, 3]`` (the ensemble; returns True)."""
    datatype, shape = inp.get("datatype"), _shape(inp)
    if datatype == "FP32":
        want, layout = [-1, 3, spec.height, spec.width], "float32 [N, 3, H, W]"
    elif datatype == "UINT8":
        want, layout = [-1, spec.height, spec.width, 3], "uint8 [N, H, W, 3] (an ensemble)"
    else:
        raise EngineError(f"{where}: input {inp.get('name')} is {datatype}; expected FP32 (the engine) or "
                          "UINT8 (the ensemble)")
    if shape[1:] == want[1:] and shape[:1] != [-1]:
        raise EngineError(f"{where}: input {inp.get('name')} has shape {shape}: a fixed batch size, but mvd-edge "
                          "sends batches of any size; serve it with a variable (-1) first dimension")
    if shape != want:
        raise EngineError(f"{where}: input {inp.get('name')} has shape {shape} but its {KEY_PREPROCESS} parameter "
                          f"says {spec.height}x{spec.width} ({layout}: {want}; from {source}); the parameter and the "
                          f"model disagree: {fix}")
    return datatype == "UINT8"


def _engine_facts(params: dict, where: str) -> dict:
    """The engine facts of the ``mvd_edge.engine`` parameter (precision fp32 when it does not say)."""
    entry = params.get(KEY_ENGINE)
    try:
        info = json.loads(entry["string_value"]) if entry is not None else {}
    except ValueError as exc:
        raise EngineError(f"{where}: its {KEY_ENGINE} parameter is not JSON ({exc})") from exc
    if not isinstance(info, dict):
        raise EngineError(f"{where}: its {KEY_ENGINE} parameter is not a JSON object")
    info.setdefault("precision", "fp32")
    return info


class TritonEmbedder(Embedder):
    """An engine served by Triton or another KServe v2 server (``triton://HOST:PORT/NAME``); see the module docstring.

    ``max_batch``: requests hold at most this many crops (default and upper bound: the model's
    ``max_batch_size``, or the settings' ``max_batch``; larger lists are split). ``timeout``:
    seconds for connecting and for each request. ``sidecar``: the engine's sidecar, for servers
    that do not serve the ``mvd_edge.*`` settings (also ``?sidecar=PATH`` in the URL).
    """

    backend = "triton"

    def __init__(self, url: str, max_batch: int | None = None, timeout: float = 60.0,
                 sidecar: str | Path | None = None):
        self.url = url
        self.address, self.model, self.version = parse_triton_url(url)
        sidecar = sidecar if sidecar is not None else url_sidecar(url)
        self.timeout = float(timeout)
        self._http, self._errors = _import_http()
        self._local = threading.local()
        where = f"Triton at {self.address}"
        client = self._client()
        try:
            ready = client.is_server_ready()
        except self._errors as exc:  # connection refused, DNS, timeouts, an HTTP error status
            raise EngineError(f"cannot reach {where} ({_first_line(exc)}); is tritonserver (or another KServe v2 "
                              "server) running and serving HTTP on that port?") from exc
        if not ready:
            raise EngineError(f"{where} is up but not ready (/v2/health/ready); wait for its models to load")
        self.extensions = self._extensions(client)
        self.binary = BINARY_EXTENSION in self.extensions
        self.url_version = self.version  # "" when the server takes no version URLs (see _open_model)
        meta = self._open_model(client)
        config = self._config(client)
        spec, dim, info, batch, limited = self._describe(meta, config, sidecar)
        if max_batch is not None and limited and max_batch > batch:
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

    def _extensions(self, client) -> frozenset[str]:
        """The protocol extensions the server metadata (``GET /v2``) lists; none if it does not answer."""
        try:
            meta = client.get_server_metadata()
        except self._errors:
            return frozenset()
        ext = meta.get("extensions") if isinstance(meta, dict) else None
        return frozenset(str(e) for e in ext) if isinstance(ext, list) else frozenset()

    def _not_ready(self, version: str = "") -> EngineError:
        return EngineError(f"Triton at {self.address} has no ready model {self.model!r}"
                           f"{f' version {version}' if version else ''}: check the name and the server's model "
                           "repository (export one with `mvd-edge export-triton`)")

    def _ask(self, call, what: str):
        try:
            return call()
        except self._errors as exc:
            raise EngineError(f"Triton at {self.address}: cannot read {what} of model {self.model!r} "
                              f"({_first_line(exc)})") from exc

    def _open_model(self, client) -> dict:
        """Check the model is ready and return its metadata; settles the URLs' version (:attr:`url_version`)."""
        if self.version:
            if self._ask(lambda: client.is_model_ready(self.model, self.version), "the readiness"):
                return self._ask(lambda: client.get_model_metadata(self.model, self.version), "the metadata")
            try:  # not ready under its version URL: is it that the server takes no version URLs?
                client.get_model_metadata(self.model, self.version)
            except self._errors as exc:
                status = _status(exc)
            else:
                status = "200"
            if status not in ("404", "501") or not self._ask(lambda: client.is_model_ready(self.model),
                                                             "the readiness"):
                raise self._not_ready(self.version)
            meta = self._ask(lambda: client.get_model_metadata(self.model), "the metadata")
            versions = [str(v) for v in meta.get("versions") or []]
            # 501: the server has no version URLs; 404 is also what a missing version gets, so it falls back
            # only where the metadata says the model is that version
            if versions == [self.version] or (status == "501" and not versions):
                self.url_version = ""
                return meta
            if status == "404":
                raise self._not_ready(self.version)
            raise EngineError(f"Triton at {self.address} refuses version URLs (HTTP 501) and model {self.model!r} "
                              f"has versions {versions}: cannot ask for version {self.version}; drop the "
                              "version from the URL to use the server's choice")
        if not self._ask(lambda: client.is_model_ready(self.model), "the readiness"):
            raise self._not_ready()
        return self._ask(lambda: client.get_model_metadata(self.model), "the metadata")

    def _config(self, client) -> dict | None:
        """Triton's model configuration (``/config``), or None where the server has no such endpoint."""
        try:
            config = client.get_model_config(self.model, self.url_version)
        except self._errors as exc:
            if _status(exc) in _ABSENT:
                return None
            raise EngineError(f"Triton at {self.address}: cannot read model {self.model!r}'s config "
                              f"({_first_line(exc)})") from exc
        config = config.get("config", config) if isinstance(config, dict) else None  # a proxy's gRPC-style wrapper
        return config or None

    def _settings(self, meta: dict, config: dict | None, sidecar: str | Path | None, where: str):
        """The ``mvd_edge.*`` parameters (config form) and where they came from: the config, the metadata, a sidecar."""
        found = None
        for source, params in (("config", (config or {}).get("parameters")), ("metadata", meta.get("parameters"))):
            params = string_params(params)
            if KEY_PREPROCESS in params:
                found = (params, f"the model {source}")
                break
        if sidecar is None:
            if found is None:
                raise EngineError(f"{where} has no {KEY_PREPROCESS} parameter in its "
                                  f"{'config or ' if config is not None else ''}metadata; {SETTINGS_HINT}")
            return found
        side, _ = _sidecar_settings(sidecar)
        if found is not None:  # both: they must describe the same engine
            served, given = spec_from_config({"parameters": found[0]}, where), spec_from_config({"parameters": side},
                                                                                                str(sidecar))
            for key, same in ((KEY_PREPROCESS, served[0] == given[0]),
                              (KEY_EMBEDDING_DIM, served[1] is None or served[1] == given[1])):
                if not same:
                    raise EngineError(f"{where}: the sidecar {sidecar} and {found[1]} disagree on {key}; give the "
                                      "sidecar of the served engine, or none")
            return found
        return side, f"the sidecar {sidecar}"

    def _describe(self, meta: dict, config: dict | None, sidecar: str | Path | None):
        """Check the model's metadata against its config and ``mvd_edge.*`` settings; name any mismatch."""
        where = f"Triton model {self.model} at {self.address}"
        params, source = self._settings(meta, config, sidecar, where)
        spec, dim = spec_from_config({"parameters": params}, where)
        ins, outs = meta.get("inputs") or [], meta.get("outputs") or []
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"{where} has {len(ins)} inputs and {len(outs)} outputs in its metadata; an mvd-edge "
                              "engine has one each (a v2 server must describe both)")
        (inp,), (out,) = ins, outs
        batch, limited = _batch_limit(inp, out, config, params, where)
        fix = ("give the sidecar of the engine the server runs" if source.startswith("the sidecar")
               else "re-export with `mvd-edge export-triton`")
        self.uint8_input = _check_input(inp, spec, where, source, fix)
        out_shape = _shape(out)
        if out.get("datatype") != "FP32" or len(out_shape) != 2:
            raise EngineError(f"{where}: output {out.get('name')} is {out.get('datatype')} {out_shape}; expected "
                              "FP32 [N, D]")
        if dim is None:
            dim = out_shape[1]
        if out_shape[1] != dim or dim < 1:
            raise EngineError(f"{where}: output {out.get('name')} has {out_shape[1]} features but its "
                              f"{KEY_EMBEDDING_DIM} parameter says {dim} (from {source}); {fix}")
        self.input_name, self.output_name = inp["name"], out["name"]
        info = _engine_facts(params, where)
        platform = (config or {}).get("platform") or (config or {}).get("backend") or meta.get("platform")
        info.update({"embedding_dim": dim, "max_batch": batch, "server": self.address, "triton_model": self.model,
                     "triton_platform": platform, "input": "uint8" if self.uint8_input else "float32",
                     "device": "triton", "settings_from": source, "binary_tensors": self.binary})
        return spec, dim, info, batch, limited

    # -------------------------------------------------------------------------------- inference

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[n, 3, H, W]`` (engine model) or uint8 BGR ``[n, H, W, 3]`` (ensemble) -> float32 ``[n, D]``."""
        want = np.uint8 if self.uint8_input else np.float32
        if x.dtype != want:
            raise TypeError(f"Triton model {self.model} takes {np.dtype(want).name} input, got {x.dtype}")
        inp = self._http.InferInput(self.input_name, list(x.shape), "UINT8" if self.uint8_input else "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(x), binary_data=self.binary)
        out = self._http.InferRequestedOutput(self.output_name, binary_data=self.binary)
        try:
            result = self._client().infer(self.model, [inp], model_version=self.url_version, outputs=[out])
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
