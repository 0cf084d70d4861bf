"""The ``triton://`` client against a KServe v2 server written by someone else: MLServer (``pip install mlserver``).

MLServer 1.7 has none of Triton's extras: no ``/v2/models/NAME/config`` (404), no binary tensor
extension (a binary request gets 422, and ``GET /v2`` lists no extensions). It is started here on
127.0.0.1 (free ports) as a subprocess serving the project's tiny exported engine through
``tests/mlserver_runtime.py`` (ONNX Runtime, CPU), twice: ``reid`` publishes the ``mvd_edge.*``
settings in its metadata parameters (as ``export-triton`` writes them), ``reid_plain`` publishes
none, so the client needs the engine's sidecar. Served embeddings must equal the local ONNX
Runtime engine's to 1e-6 (max abs).

Skipped when mlserver is not installed (it is not a project dependency; see the CI lines in the
README's test section).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mvd_edge.runtime import load_embedder
from mvd_edge.runtime.sidecar import EngineError
from mvd_edge.runtime.triton_repo import export_triton, read_config

if importlib.util.find_spec("mlserver") is None:  # found, not imported: only its own process needs it
    pytest.skip("mlserver is not installed (pip install 'mlserver==1.7.1')", allow_module_level=True)
pytest.importorskip("tritonclient.http")

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ENGINE_MAX_BATCH, free_port  # noqa: E402

TOL = 1e-6
MAX_BATCH = TINY_ENGINE_MAX_BATCH
STARTUP_S = 90


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def engine(tiny_ort_engine) -> Path:
    return tiny_ort_engine


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory, engine):
    """MLServer on 127.0.0.1:PORT serving ``reid`` (settings in its metadata) and ``reid_plain`` (none)."""
    root = tmp_path_factory.mktemp("mlserver")
    export_triton(engine, root / "triton", "reid", preprocess="none")  # the mvd_edge.* parameters, as exported
    params = {k: v["string_value"] for k, v in read_config(root / "triton" / "reid")["parameters"].items()}
    params["mvd_edge.max_batch"] = str(MAX_BATCH)
    cfg = read_config(root / "triton" / "reid")
    tensors = {
        "inputs": [{"name": t["name"], "datatype": "FP32", "shape": [-1, *t["dims"]]} for t in cfg["input"]],
        "outputs": [{"name": t["name"], "datatype": "FP32", "shape": [-1, *t["dims"]]} for t in cfg["output"]],
    }
    models = root / "models"
    for name, published in (("reid", params), ("reid_plain", None)):
        (models / name).mkdir(parents=True)
        extra = {"metadata_parameters": published} if published else {}
        (models / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_runtime.OnnxRuntimeModel", **tensors,
            "parameters": {"uri": str(engine), "version": "1", "extra": extra}}))
    http_port, grpc_port = free_port(), free_port()
    (models / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_endpoint": None,
        "parallel_workers": 0, "debug": False}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                        os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log = (root / "mlserver.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", "from mlserver.cli.main import main; main()", "start", str(models)],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}/v2"
    try:
        deadline = time.monotonic() + STARTUP_S
        while not all(_get(f"{base}/models/{m}/ready") == 200 for m in ("reid", "reid_plain")):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "mlserver.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"MLServer did not get ready (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.25)
        yield {"port": http_port, "base": base, "log": root / "mlserver.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _crops(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(24, 160)), int(rng.integers(12, 80)), 3), dtype=np.uint8)
            for _ in range(n)]


def test_mlserver_has_none_of_tritons_extras(mlserver):
    """What the client must cope with (if MLServer gains these, the other tests stop covering plain v2)."""
    with urllib.request.urlopen(mlserver["base"], timeout=5) as resp:
        assert "binary_tensor_data" not in json.load(resp)["extensions"]
    assert _get(f"{mlserver['base']}/models/reid/config") == 404


@pytest.mark.parametrize("path", ["reid", "reid/1"])
def test_mlserver_embeddings_equal_local_onnxruntime(mlserver, engine, path):
    crops = _crops(41 if path == "reid" else 42, 10)
    local = load_embedder(engine)
    want = local.embed(crops)
    with load_embedder(f"triton://127.0.0.1:{mlserver['port']}/{path}") as remote:
        assert remote.info["settings_from"] == "the model metadata" and remote.info["binary_tensors"] is False
        assert remote.spec == local.spec and remote.dim == local.dim == 512 and remote.max_batch == MAX_BATCH
        assert remote.url_version == ("1" if path == "reid/1" else "")  # MLServer takes version URLs
        assert remote.info["engine_sha256"] == local.info["engine_sha256"]
        got = remote.embed(crops)  # 10 crops: batches of 4, 4, 2
        assert remote.embed([]).shape == (0, 512)
    assert got.shape == want.shape == (10, 512) and got.dtype == np.float32
    assert float(np.abs(got - want).max()) <= TOL


def test_mlserver_without_settings_takes_the_sidecar(mlserver, engine):
    url = f"triton://127.0.0.1:{mlserver['port']}/reid_plain"
    with pytest.raises(EngineError, match=r"no mvd_edge\.preprocess parameter in its metadata; .*\?sidecar=") as exc:
        load_embedder(url)
    assert "\n" not in str(exc.value)
    crops = _crops(43, 6)
    want = load_embedder(engine).embed(crops)
    with load_embedder(f"{url}?sidecar={engine}.json") as remote:
        assert remote.info["settings_from"] == f"the sidecar {engine}.json" and remote.max_batch == MAX_BATCH
        got = remote.embed(crops)
    assert float(np.abs(got - want).max()) <= TOL


def test_mlserver_errors_are_one_line(mlserver):
    with pytest.raises(EngineError, match="no ready model 'nope'") as exc:
        load_embedder(f"triton://127.0.0.1:{mlserver['port']}/nope")
    assert "\n" not in str(exc.value)
    with pytest.raises(EngineError, match="no ready model 'reid' version 7"):
        load_embedder(f"triton://127.0.0.1:{mlserver['port']}/reid/7")
