"""The TensorRT 10/11 differences, driven through a recording stand-in for ``tensorrt``
(the real library cannot be installed here; tests against it are marked ``trt``)."""

from __future__ import annotations

import enum
import sys
import types

import pytest

from mvd_edge.runtime import trt_compat


def fake_tensorrt(version: str, parse_ok: bool = True, build_ok: bool = True, cache_ok: bool = True):
    calls: dict = {"flags_set": [], "profiles": []}
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Flag(enum.IntEnum):
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 5

    class Pool(enum.IntEnum):
        WORKSPACE = 0

    class Logger:
        VERBOSE, WARNING = 0, 1

        def __init__(self, level):
            calls["log_level"] = level

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            calls["profiles"].append((name, mn, opt, mx))

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"cache:" + self.data

    class Config:
        cache = None

        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = (pool, size)

        def create_timing_cache(self, data):
            calls["cache_in"] = data
            return Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):  # False: made on another GPU / TensorRT
            calls["ignore_mismatch"] = ignore_mismatch
            if cache_ok:
                self.cache = cache
            return cache_ok

        def get_timing_cache(self):
            return self.cache  # None when no cache is set

        def add_optimization_profile(self, p):
            calls["profile_added"] = True

        def set_flag(self, flag):  # precision flags must never be used (11.x has none)
            calls["flags_set"].append(flag)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"ENGINE" if build_ok else None

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls["parsed"] = path
            return parse_ok

        def get_error(self, i):
            return "unsupported node Foo"

    trt.NetworkDefinitionCreationFlag = Flag
    trt.MemoryPoolType = Pool
    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, Parser
    trt.init_libnvinfer_plugins = lambda logger, ns: None
    return trt, calls


@pytest.mark.parametrize("version,expected", [("10.3.0", 1 << 5), ("10.13.2", 1 << 5), ("11.0.0", 0), ("11.2.1", 0)])
def test_strongly_typed_flag_only_on_10x(version, expected):
    trt, _ = fake_tensorrt(version)
    assert trt_compat.network_flags(trt) == expected


@pytest.mark.parametrize("version", ["8.6.1", "9.3.0", "x.y"])
def test_old_or_unparsable_tensorrt_is_refused(version):
    trt, _ = fake_tensorrt(version)
    with pytest.raises(trt_compat.TensorRTUnavailable):
        trt_compat.network_flags(trt)


@pytest.mark.parametrize("version", ["10.3.0", "11.0.0"])
def test_build_uses_profile_workspace_and_timing_cache_and_no_precision_flags(tmp_path, monkeypatch, version):
    trt, calls = fake_tensorrt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    engine, facts, cache_out = trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 256, 128),
                                                                  (1, 8, 32), 1 << 30, timing_cache=cache)
    assert engine == b"ENGINE"
    assert calls["network_flags"] == (1 << 5 if version.startswith("10") else 0)
    assert calls["workspace"] == (trt.MemoryPoolType.WORKSPACE, 1 << 30)
    assert calls["profiles"] == [("input", (1, 3, 256, 128), (8, 3, 256, 128), (32, 3, 256, 128))]
    assert calls["profile_added"] and calls["flags_set"] == []
    assert calls["cache_in"] == b"old" and calls["ignore_mismatch"] is False
    assert cache_out == b"cache:old" and cache.read_bytes() == b"old"  # reused; saved by the caller, after the engine
    assert facts == {"tensorrt": version, "strongly_typed": True, "network_flags": calls["network_flags"]}


def test_a_timing_cache_tensorrt_refuses_is_a_warning_and_the_build_goes_on_without_it(tmp_path, monkeypatch):
    """set_timing_cache returns False for a cache made on another GPU (ignore_mismatch=False) and
    get_timing_cache() then returns None: neither may cost the engine."""
    trt, calls = fake_tensorrt("10.3.0", cache_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from-an-H100")
    with pytest.warns(UserWarning, match=r"refused the timing cache .*timing.cache.*building without one"):
        built = trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 8, 4), (1, 1, 1), 1 << 20,
                                                   timing_cache=cache)
    assert built.engine == b"ENGINE" and built.timing_cache is None
    assert cache.read_bytes() == b"from-an-H100"  # left as it is


def test_a_new_timing_cache_starts_empty_and_no_path_means_no_cache(tmp_path, monkeypatch):
    trt, calls = fake_tensorrt("11.0.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    built = trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 8, 4), (1, 1, 1), 1 << 20,
                                               timing_cache=tmp_path / "sub" / "new.cache")
    assert calls["cache_in"] == b"" and built.timing_cache == b"cache:"
    del calls["cache_in"]
    built = trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 8, 4), (1, 1, 1), 1 << 20)
    assert "cache_in" not in calls and built.timing_cache is None


def test_save_timing_cache_writes_atomically_and_only_warns_on_failure(tmp_path):
    path = tmp_path / "a" / "timing.cache"
    assert trt_compat.save_timing_cache(path, b"T") and path.read_bytes() == b"T"
    assert [p.name for p in path.parent.iterdir()] == ["timing.cache"]
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.warns(UserWarning, match="could not save the TensorRT timing cache"):
        assert not trt_compat.save_timing_cache(blocked / "timing.cache", b"T")


def test_parse_and_build_failures_are_clear(tmp_path, monkeypatch):
    trt, _ = fake_tensorrt("10.3.0", parse_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(RuntimeError, match="could not parse.*unsupported node Foo"):
        trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 8, 4), (1, 1, 1), 1 << 20)
    trt, _ = fake_tensorrt("11.0.0", build_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(RuntimeError, match="failed to build"):
        trt_compat.build_serialized_engine(tmp_path / "m.onnx", "input", (3, 8, 4), (1, 1, 1), 1 << 20)


def test_missing_tensorrt_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(trt_compat.TensorRTUnavailable, match=r"pip install 'mvd-edge\[trt-cu12\]'.*'mvd-edge\[trt-cu13\]'"):
        trt_compat.import_tensorrt()


def test_type_stubs_alone_are_not_tensorrt(monkeypatch):
    """tensorrt-stubs without TensorRT leaves an importable, empty `tensorrt` namespace package."""
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    with pytest.raises(trt_compat.TensorRTUnavailable, match=r"only type stubs \(tensorrt-stubs\)\. TensorRT is not"):
        trt_compat.import_tensorrt()
