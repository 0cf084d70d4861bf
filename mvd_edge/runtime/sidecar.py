"""Engine sidecar JSON: what was built, from what, for which machine; checked on load.

Every engine file ``X`` has ``X.json`` beside it. Loading checks that the engine file is
intact (size and SHA-256 as recorded) and, for TensorRT, that the GPU and TensorRT version
are the ones it was built for: engines are not portable across either.

The sidecar also records a short hash of each field that decides what an embedding means
(``facts_sha256``: preprocessing, dimension, recipe, precision, tensor names, ...), so an
edited field is caught by name on engines that carry no metadata of their own (TensorRT
plans); ONNX Runtime engines are also checked against their graph's metadata.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

from mvd_edge.core.errors import MvdEdgeError
from mvd_edge.core.util import read_json, write_json

SIDECAR_FORMAT = "mvd-edge-engine/1"


class EngineError(MvdEdgeError, RuntimeError):
    """An engine cannot be used here; the message says why and how to rebuild it."""


def sidecar_path(engine: str | Path) -> Path:
    p = Path(engine)
    return p.with_name(p.name + ".json")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def rebuild_hint(info: dict) -> str:
    src = info.get("source_onnx") or "model.onnx"
    backend = info.get("backend", "ort")
    batch = info.get("batch_profile")
    extra = f" --batch {','.join(str(b) for b in batch)}" if batch and backend == "trt" else ""
    return f"rebuild it with: mvd-edge build-engine {src} --backend {backend}{extra}"


FACT_FIELDS = ("backend", "precision", "int8_flavour", "recipe", "fused_head", "preprocess", "embedding_dim",
               "input_name", "output_name", "batch_profile", "student_of")
"""Sidecar fields that decide what the engine's output means (``preprocess`` is hashed key by key)."""


def sidecar_facts(info: dict) -> dict[str, str]:
    """``{field: first 16 hex digits of the SHA-256 of its canonical JSON}`` for :data:`FACT_FIELDS`."""
    flat: dict[str, object] = {}
    for key in FACT_FIELDS:
        if key not in info:
            continue
        value = info[key]
        if key == "preprocess" and isinstance(value, dict):
            flat.update({f"preprocess.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16] for k, v in sorted(flat.items())}


def check_sidecar_facts(info: dict, engine: str | Path) -> bool:
    """Raise :class:`EngineError` naming the first field whose value is not the one the engine
    was built with. Returns False (nothing checked) for sidecars written before the hashes were."""
    stored = info.get("facts_sha256")
    if not isinstance(stored, dict):
        return False
    now = sidecar_facts(info)
    for key in sorted(set(stored) | set(now)):
        if stored.get(key) != now.get(key):
            state = "missing" if key not in now else "added" if key not in stored else "changed"
            raise EngineError(f"{engine}: its sidecar field {key} is {state} since the engine was built (the sidecar "
                              f"was edited or belongs to another engine); restore it or {rebuild_hint(info)}")
    return True


def write_sidecar(engine: str | Path, info: dict) -> Path:
    """Write ``<engine>.json`` with ``info`` plus format, engine size/hash, field hashes, host and time."""
    p = Path(engine)
    data = {"format": SIDECAR_FORMAT, **info, "engine_file": p.name, "engine_bytes": p.stat().st_size,
            "engine_sha256": sha256_file(p), "host": {"machine": platform.machine(), "system": platform.system()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data["facts_sha256"] = sidecar_facts(data)
    return write_json(sidecar_path(p), data, indent=2, sort_keys=True)  # atomic: never half a sidecar


def read_sidecar(engine: str | Path, verify_hash: bool = True) -> dict:
    """Read and check ``<engine>.json``: present, well-formed, engine intact."""
    p = Path(engine)
    if not p.is_file():
        raise EngineError(f"engine not found: {p}")
    sc = sidecar_path(p)
    if not sc.is_file():
        raise EngineError(f"no sidecar {sc} next to {p}: build engines with `mvd-edge build-engine`")
    info = read_json(sc, EngineError, "an mvd-edge engine sidecar", fmt=SIDECAR_FORMAT, hint="rebuild the engine")
    size = p.stat().st_size
    if size != info.get("engine_bytes"):
        raise EngineError(f"{p} is {size} bytes but was built as {info.get('engine_bytes')} (truncated or "
                          f"replaced); {rebuild_hint(info)}")
    if verify_hash and sha256_file(p) != info.get("engine_sha256"):
        raise EngineError(f"{p} does not match the hash in its sidecar (corrupt or modified); {rebuild_hint(info)}")
    validate_sidecar(info, sc)
    return info


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def validate_sidecar(info: dict, where: str | Path) -> None:
    """Raise :class:`EngineError` naming the first field of a sidecar (``where``: its path) whose
    type or range no engine could have been built with: ``preprocess`` (a record
    :meth:`PreprocessSpec.from_dict` accepts), ``embedding_dim`` (int >= 1), ``max_batch`` (int
    >= 1, when present), ``batch_profile`` (three ints ``1 <= min <= opt <= max``, when present).

    Only types and ranges: a well-typed value that is not the one the engine was built with is
    caught by the field hashes (:func:`check_sidecar_facts`) and the backends' own checks, which
    name what it contradicts."""
    from mvd_edge.core.preprocess import preprocess_from_record

    def bad(detail: str) -> EngineError:
        return EngineError(f"{where}: {detail} (the sidecar was edited or damaged); {rebuild_hint(_hintable(info))}")

    if "preprocess" not in info:
        raise bad("preprocess is missing")
    try:
        preprocess_from_record(info["preprocess"])
    except ValueError as exc:
        raise bad(str(exc)) from exc
    if "embedding_dim" not in info:
        raise bad("embedding_dim is missing")
    if not _positive_int(info["embedding_dim"]):
        raise bad(f"embedding_dim must be an integer >= 1, got {info['embedding_dim']!r}")
    if "max_batch" in info and not _positive_int(info["max_batch"]):
        raise bad(f"max_batch must be an integer >= 1, got {info['max_batch']!r}")
    if "batch_profile" in info:
        bp = info["batch_profile"]
        if (not isinstance(bp, (list, tuple)) or len(bp) != 3 or not all(_positive_int(b) for b in bp)
                or not bp[0] <= bp[1] <= bp[2]):
            raise bad(f"batch_profile must be three integers 1 <= min <= opt <= max, got {bp!r}")
    if "max_batch" in info and "batch_profile" in info and info["max_batch"] > info["batch_profile"][2]:
        raise bad(f"max_batch {info['max_batch']} is above the batch profile's max {info['batch_profile'][2]}")


def _hintable(info: dict) -> dict:
    """``info`` with the fields :func:`rebuild_hint` formats dropped where they are not what it expects."""
    out = dict(info)
    bp = out.get("batch_profile")
    if not isinstance(bp, (list, tuple)) or not all(isinstance(b, (int, float, str)) for b in bp):
        out.pop("batch_profile", None)
    for key in ("source_onnx", "backend"):
        if not isinstance(out.get(key), str):
            out.pop(key, None)
    return out


def check_trt_compat(info: dict, trt_version: str, gpu_name: str, compute_capability: str) -> None:
    """TensorRT engines only run on the GPU model and TensorRT version they were built with."""
    built = info.get("versions", {}).get("tensorrt")
    gpu = info.get("gpu", {})
    if built and built != trt_version:
        raise EngineError(f"engine was built with TensorRT {built}, this machine has {trt_version}; "
                          f"{rebuild_hint(info)}")
    if gpu.get("compute_capability") and gpu.get("compute_capability") != compute_capability:
        raise EngineError(f"engine was built for {gpu.get('name')} (sm {gpu.get('compute_capability')}), this GPU is "
                          f"{gpu_name} (sm {compute_capability}); {rebuild_hint(info)}")
    if gpu.get("name") and gpu.get("name") != gpu_name:
        raise EngineError(f"engine was built on {gpu.get('name')}, this GPU is {gpu_name}; {rebuild_hint(info)}")


def model_sha256(emb, engine: str | Path | None = None) -> str | None:
    """The sha256 of the training checkpoint an embedder's vectors come from (the model's
    identity); None when nothing records one. The one place every artefact that embeds (galleries,
    verify reports) takes it from.

    A checkpoint (the torch backend) is its own source: its file's hash. Otherwise the graph's own
    metadata (an ONNX Runtime session, or ``engine`` when it is an ``.onnx`` file) wins over the
    sidecar's ``hashes.checkpoint_sha256`` (TensorRT plans carry no metadata of their own)."""
    from mvd_edge.core.graphmeta import GraphMeta, MetadataError

    info = getattr(emb, "info", None) or {}
    if getattr(emb, "backend", None) == "torch" or (engine is not None and Path(engine).suffix == ".pt"):
        ckpt = info.get("checkpoint") or engine
        return sha256_file(ckpt) if ckpt is not None and Path(ckpt).is_file() else None
    sha = None
    session = getattr(emb, "session", None)
    try:
        if session is not None:
            sha = GraphMeta.from_session(session, source=engine or "<engine>").checkpoint_sha256
        elif engine is not None and Path(engine).suffix == ".onnx" and Path(engine).is_file():
            sha = GraphMeta.from_onnx(engine).checkpoint_sha256
    except (MetadataError, OSError, ValueError, AttributeError):
        sha = None
    hashes = info.get("hashes")
    recorded = (hashes.get("checkpoint_sha256") if isinstance(hashes, dict) else None) or info.get("checkpoint_sha256")
    value = sha or recorded
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------- the matcher's operating point

OPERATING_POINT_KEY = "operating_point"


def set_operating_point(engine: str | Path, point: dict) -> Path:
    """Store the matcher's operating point (``threshold``, ``margin`` and how they were obtained) in the sidecar.

    The sidecar is rewritten atomically; its build time (``created``) is kept.
    """
    for key in ("threshold", "margin"):
        if isinstance(point.get(key), bool) or not isinstance(point.get(key), (int, float)):
            raise EngineError(f"an operating point needs a numeric {key!r}, got {point.get(key)!r}")
    info = read_sidecar(engine)  # checks the engine is the one the sidecar describes
    info[OPERATING_POINT_KEY] = point
    return write_json(sidecar_path(engine), info, indent=2, sort_keys=True)  # same engine: hashes stay valid


def _number(point: dict, key: str, where: str, path: str) -> float:
    value = point.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EngineError(f"{where}: {path}.{key} must be a number, got {value!r}; "
                          "re-run `mvd-edge calibrate-threshold`")
    return float(value)


def operating_point(info: dict | None) -> dict:
    """The sidecar's ``operating_point`` with its numbers checked (``{}`` when there is none): ``threshold``
    and ``margin`` as floats, and the ``fast`` / ``fast_early`` points (their numbers checked when they
    ``reached`` their precision) and ``same_modality`` as objects. What the matcher makes of it is
    :func:`mvd_edge.match.config.resolve`'s business. A malformed one is an :class:`EngineError`."""
    where = (info or {}).get("engine_file", "the engine's sidecar")
    point = (info or {}).get(OPERATING_POINT_KEY)
    if point is None:
        return {}
    if not isinstance(point, dict):
        raise EngineError(f"{where}: operating_point must be an object, got {type(point).__name__}; "
                          "re-run `mvd-edge calibrate-threshold`")
    out = dict(point)
    if point:
        out["threshold"] = _number(point, "threshold", where, OPERATING_POINT_KEY)
    if "margin" in point:
        out["margin"] = _number(point, "margin", where, OPERATING_POINT_KEY)
    for key in ("fast", "fast_early", "same_modality"):
        sub = point.get(key)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise EngineError(f"{where}: operating_point.{key} must be an object, got {type(sub).__name__}; "
                              "re-run `mvd-edge calibrate-threshold`")
        sub = dict(sub)
        if key == "same_modality":
            checked = ("threshold",)
        else:  # a fast point is only used when it reached its precision
            checked = ("threshold", "margin") if sub.get("reached") is True else ()
        for name in checked:
            sub[name] = _number(sub, name, where, f"{OPERATING_POINT_KEY}.{key}")
        out[key] = sub
    return out
