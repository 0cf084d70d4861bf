"""A small stand-in for Triton Inference Server, for tests: the KServe v2 HTTP protocol over a model repository.

It serves what :func:`mvd_edge.runtime.triton_repo.export_triton` writes, the way Triton would:

* ``onnxruntime_onnx`` models run ``1/model.onnx`` with ONNX Runtime (CPU);
* ``python``-backend models import ``1/model.py`` with a minimal fake ``triton_python_backend_utils``
  and call its ``TritonPythonModel.initialize``/``execute``;
* ``ensemble`` models run their ``ensemble_scheduling`` steps, mapping tensors by name.

Endpoints: ``GET /v2`` (server metadata: Triton's extensions), ``GET /v2/health/live|ready``,
``GET /v2/models/NAME[/versions/V][/ready|/config]``,
``POST /v2/models/NAME[/versions/V]/infer`` with JSON tensors (``data``) and the binary tensor
extension (``Inference-Header-Content-Length``, ``binary_data_size``, ``binary_data`` /
``binary_data_output``) that ``tritonclient.http`` uses. Every tensor is checked against the
model's config as Triton checks it (names, datatype, dims, batch <= ``max_batch_size``); errors
are ``{"error": ...}`` with status 400. ``log`` records ``(model, batch size)`` of every
inference, including the ensemble's steps; ``wire`` records ``"binary"`` or ``"json"`` for every
request. Not a real server: no scheduling, no batching across requests, one version.

``plain=True`` makes it a server with nothing but the v2 protocol, like MLServer or KServe:
no ``/config`` (404), no binary tensors (not listed in ``GET /v2``; a binary request gets 422),
version URLs refused (501, or ``version_status``), and the model metadata carries the ``mvd_edge.*`` parameters of the
config as plain strings, and ``mvd_edge.max_batch``, unless ``metadata_params=False``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from mvd_edge.runtime.triton_repo import read_config

DTYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "UINT8": np.uint8, "INT8": np.int8,
          "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


#: what Triton 2.5x lists in its server metadata (``GET /v2``)
TRITON_EXTENSIONS = ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
                     "schedule_policy", "model_configuration", "system_shared_memory", "cuda_shared_memory",
                     "binary_tensor_data", "parameters", "statistics", "trace", "logging"]


class StandInError(Exception):
    """A request Triton would refuse (status 400)."""


def fake_pb_utils() -> types.ModuleType:
    """The part of Triton's ``triton_python_backend_utils`` a simple Python-backend model uses."""
    m = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name, array):
            if not isinstance(array, np.ndarray):
                raise TypeError("pb_utils.Tensor takes a numpy array")
            self._name, self._array = name, array

        def name(self):
            return self._name

        def as_numpy(self):
            return self._array

    class TritonError(Exception):
        def __init__(self, msg):
            super().__init__(msg)
            self._msg = msg

        def message(self):
            return self._msg

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self._outputs, self._error = list(output_tensors), error

        def output_tensors(self):
            return self._outputs

        def has_error(self):
            return self._error is not None

        def error(self):
            return self._error

    class InferenceRequest:
        def __init__(self, inputs):
            self._inputs = inputs

        def inputs(self):
            return list(self._inputs.values())

    def get_input_tensor_by_name(request, name):
        return request._inputs.get(name)

    def get_output_tensor_by_name(response, name):
        return next((t for t in response.output_tensors() if t.name() == name), None)

    m.Tensor, m.TritonError, m.InferenceResponse, m.InferenceRequest = Tensor, TritonError, InferenceResponse, \
        InferenceRequest
    m.get_input_tensor_by_name, m.get_output_tensor_by_name = get_input_tensor_by_name, get_output_tensor_by_name
    return m


def load_python_model(model_py: Path, pb_utils: types.ModuleType | None = None):
    """Import a Python-backend ``model.py`` against the fake ``triton_python_backend_utils``; returns the module."""
    pb_utils = pb_utils or fake_pb_utils()
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = pb_utils
    try:
        spec = importlib.util.spec_from_file_location(f"standin_model_{abs(hash(str(model_py)))}", model_py)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved
    return module


class StandInServer:
    """Serve a model repository on ``127.0.0.1:port`` (port 0: any free port) in a background thread."""

    def __init__(self, repo: str | Path, port: int = 0, plain: bool = False, metadata_params: bool = True,
                 version_status: int = 501):
        self.repo = Path(repo)
        self.plain, self.metadata_params, self.version_status = plain, metadata_params, version_status
        self.wire: list[str] = []
        self.configs: dict[str, dict] = {}
        self._runners: dict[str, object] = {}
        self.log: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.pb_utils = fake_pb_utils()
        for d in sorted(p for p in self.repo.iterdir() if (p / "config.pbtxt").is_file()):
            cfg = read_config(d)
            self.configs[d.name] = cfg
            if cfg.get("platform") == "onnxruntime_onnx":
                import onnxruntime as ort

                self._runners[d.name] = ort.InferenceSession(str(d / "1" / "model.onnx"),
                                                             providers=["CPUExecutionProvider"])
            elif cfg.get("backend") == "python":
                module = load_python_model(d / "1" / "model.py", self.pb_utils)
                model = module.TritonPythonModel()
                model.initialize({"model_config": json.dumps(cfg), "model_name": d.name, "model_version": "1",
                                  "model_instance_kind": "CPU", "model_instance_name": f"{d.name}_0"})
                self._runners[d.name] = model
                self.python_modules = getattr(self, "python_modules", {})
                self.python_modules[d.name] = module
            elif cfg.get("platform") == "ensemble":
                self._runners[d.name] = "ensemble"
            else:
                raise ValueError(f"the stand-in cannot serve {d.name}: {cfg.get('platform') or cfg.get('backend')}")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="triton-standin", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def url(self, model: str) -> str:
        return f"triton://127.0.0.1:{self.port}/{model}"

    # ------------------------------------------------------------------------------ models

    def metadata(self, name: str) -> dict:
        cfg = self.configs[name]
        batch = [-1] if int(cfg.get("max_batch_size", 0)) > 0 else []

        def tensors(field):
            return [{"name": t["name"], "datatype": t["data_type"].removeprefix("TYPE_"),
                     "shape": batch + [int(d) for d in t["dims"]]} for t in cfg.get(field, [])]

        meta = {"name": name, "versions": ["1"], "platform": cfg.get("platform") or cfg.get("backend"),
                "inputs": tensors("input"), "outputs": tensors("output")}
        if self.plain and self.metadata_params:
            meta["parameters"] = {k: v["string_value"] for k, v in (cfg.get("parameters") or {}).items()
                                  if k.startswith("mvd_edge.")}
            meta["parameters"]["mvd_edge.max_batch"] = str(cfg.get("max_batch_size", 0))
        return meta

    def _check(self, name: str, field: str, tensors: dict[str, np.ndarray]) -> int:
        cfg = self.configs[name]
        want = {t["name"]: t for t in cfg.get(field, [])}
        if set(tensors) != set(want):
            raise StandInError(f"[{name}] expected {field}s {sorted(want)}, got {sorted(tensors)}")
        batch = None
        for tname, arr in tensors.items():
            t = want[tname]
            dtype = DTYPES[t["data_type"].removeprefix("TYPE_")]
            if arr.dtype != dtype:
                raise StandInError(f"[{name}] {field} '{tname}': datatype {arr.dtype} but the model takes "
                                   f"{t['data_type']}")
            dims = [int(d) for d in t["dims"]]
            mbs = int(cfg.get("max_batch_size", 0))
            if list(arr.shape[1:] if mbs else arr.shape) != dims:
                raise StandInError(f"[{name}] unexpected shape for {field} '{tname}', model expects "
                                   f"{([-1] if mbs else []) + dims}, got {list(arr.shape)}")
            if mbs:
                if arr.shape[0] > mbs or arr.shape[0] < 1:
                    raise StandInError(f"[{name}] inference request batch-size must be <= {mbs} for '{name}'")
                batch = arr.shape[0]
        return batch or 0

    def run(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name not in self.configs:
            raise StandInError(f"Request for unknown model: '{name}' is not found")
        batch = self._check(name, "input", inputs)
        with self._lock:
            self.log.append((name, batch))
        runner = self._runners[name]
        cfg = self.configs[name]
        if runner == "ensemble":
            pool = dict(inputs)
            for step in cfg["ensemble_scheduling"]["step"]:
                sub = {k: pool[v] for k, v in step["input_map"].items()}
                got = self.run(step["model_name"], sub)
                for k, v in step["output_map"].items():
                    pool[v] = got[k]
            outputs = {t["name"]: pool[t["name"]] for t in cfg["output"]}
        elif cfg.get("backend") == "python":
            request = self.pb_utils.InferenceRequest({k: self.pb_utils.Tensor(k, v) for k, v in inputs.items()})
            (response,) = runner.execute([request])
            if response.has_error():
                raise StandInError(f"[{name}] {response.error().message()}")
            outputs = {t.name(): t.as_numpy() for t in response.output_tensors()}
        else:
            names = [t["name"] for t in cfg["output"]]
            outputs = dict(zip(names, runner.run(names, inputs)))
        self._check(name, "output", outputs)
        return outputs


def _make_handler(server: StandInServer):
    route = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/config|/infer)?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
            self.send_response(status)
            for k, v in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj):
            self._send(status, json.dumps(obj).encode())

        def _match(self):
            m = route.match(self.path.split("?")[0])
            if not m:
                return None
            if m["version"] is not None and server.plain:
                self._json(server.version_status, {"error": "model versions are not supported"})
                return False
            if m["name"] not in server.configs or (m["version"] not in (None, "1")):
                self._json(400, {"error": f"Request for unknown model: '{m['name']}' is not found"})
                return False
            return m

        def do_GET(self):
            if self.path in ("/v2/health/live", "/v2/health/ready"):
                return self._send(200, b"", {})
            if self.path == "/v2":
                extensions = ["parameters"] if server.plain else TRITON_EXTENSIONS
                return self._json(200, {"name": "standin" if server.plain else "triton", "version": "0",
                                        "extensions": extensions})
            m = self._match()
            if m is None:
                return self._json(404, {"error": "Not Found"})
            if m is False:
                return None
            if m["rest"] == "/ready":
                return self._send(200, b"", {})
            if m["rest"] == "/config":
                if server.plain:
                    return self._json(404, {"error": "Not Found"})
                return self._json(200, server.configs[m["name"]])
            if m["rest"] is None:
                return self._json(200, server.metadata(m["name"]))
            return self._json(405, {"error": "use POST for infer"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            m = self._match()
            if m is None or m is False:
                return None if m is False else self._json(404, {"error": "Not Found"})
            if m["rest"] != "/infer":
                return self._json(405, {"error": "only /infer takes POST"})
            try:
                if self.headers.get("Content-Encoding"):
                    raise StandInError("the stand-in does not decompress request bodies")
                header_len = self.headers.get("Inference-Header-Content-Length")
                if header_len is not None and server.plain:
                    return self._json(422, {"error": "the request body is not JSON"})
                server.wire.append("json" if header_len is None else "binary")
                header_len = int(header_len) if header_len is not None else len(body)
                request = json.loads(body[:header_len])
                binary, offset = memoryview(body)[header_len:], 0
                inputs = {}
                for t in request["inputs"]:
                    dtype = DTYPES.get(t["datatype"])
                    if dtype is None:
                        raise StandInError(f"unsupported datatype {t['datatype']}")
                    shape = [int(d) for d in t["shape"]]
                    size = (t.get("parameters") or {}).get("binary_data_size")
                    if size is not None:
                        chunk = binary[offset:offset + int(size)]
                        offset += int(size)
                        if len(chunk) != int(size):
                            raise StandInError(f"input '{t['name']}': body holds fewer bytes than binary_data_size")
                        arr = np.frombuffer(chunk, dtype=dtype)
                    else:
                        arr = np.asarray(t["data"], dtype=dtype).ravel()
                    if arr.size != int(np.prod(shape)):
                        raise StandInError(f"input '{t['name']}': {arr.size} elements for shape {shape}")
                    inputs[t["name"]] = arr.reshape(shape)
                if offset != len(binary):
                    raise StandInError("the request body holds more binary data than its inputs claim")
                outputs = server.run(m["name"], inputs)
            except StandInError as exc:
                return self._json(400, {"error": str(exc)})
            params = request.get("parameters") or {}
            wanted = request.get("outputs") or [{"name": n, "parameters": {
                "binary_data": bool(params.get("binary_data_output", False))}} for n in outputs]
            entries, blobs = [], []
            for w in wanted:
                if w["name"] not in outputs:
                    return self._json(400, {"error": f"unexpected inference output '{w['name']}'"})
                arr = outputs[w["name"]]
                dt = next(k for k, v in DTYPES.items() if np.dtype(v) == arr.dtype)
                entry = {"name": w["name"], "datatype": dt, "shape": list(arr.shape)}
                if (w.get("parameters") or {}).get("binary_data", False):
                    raw = np.ascontiguousarray(arr).tobytes()
                    entry["parameters"] = {"binary_data_size": len(raw)}
                    blobs.append(raw)
                else:
                    entry["data"] = arr.ravel().tolist()
                entries.append(entry)
            head = json.dumps({"model_name": m["name"], "model_version": "1", "outputs": entries}).encode()
            if blobs:
                return self._send(200, head + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                                               "Inference-Header-Content-Length": str(len(head))})
            return self._send(200, head)

    return Handler
