"""The shared helpers of mvd_edge.core.util."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mvd_edge.core.util import random_crops, read_json, row_cosine, write_json


class Boom(ValueError):
    pass


def test_random_crops_sizes_dtype_and_seed():
    a = random_crops(20, 3)
    b = random_crops(20, np.random.default_rng(3))
    assert all(x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3 for x in a)
    assert all(48 <= x.shape[0] < 300 and 24 <= x.shape[1] < 150 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # an int seed and its Generator draw the same
    assert not np.array_equal(a[0], random_crops(1, 4)[0])
    small = random_crops(5, 0, heights=(10, 11), widths=(7, 8))
    assert {x.shape for x in small} == {(10, 7, 3)}


def test_row_cosine_against_a_hand_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    want = [float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y))) for x, y in zip(a, b)]
    np.testing.assert_allclose(row_cosine(a, b), want, rtol=1e-12)
    np.testing.assert_allclose(row_cosine(a, 3 * a), 1.0)
    with pytest.raises(ValueError, match="one shape"):
        row_cosine(a, b[:3])


def test_read_json_errors_name_the_file_and_what_it_is(tmp_path):
    p = tmp_path / "x.json"
    with pytest.raises(Boom, match="sidecar not found: .*x.json; rebuild"):
        read_json(p, Boom, "sidecar", hint="rebuild")
    p.write_text("{not json")
    with pytest.raises(Boom, match="not valid JSON"):
        read_json(p, Boom, "sidecar")
    p.write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(Boom, match="expected 'mine/1'"):
        read_json(p, Boom, "a manifest", fmt="mine/1")
    p.write_text(json.dumps({"format": "mine/1", "k": 2}))
    assert read_json(p, Boom, "a manifest", fmt="mine/1")["k"] == 2


def test_write_json_is_atomic_and_reads_back(tmp_path):
    p = tmp_path / "x.json"
    write_json(p, {"format": "mine/1", "k": [1, 2]}, indent=1)
    assert read_json(p, Boom, "x", fmt="mine/1")["k"] == [1, 2]
    with pytest.raises(TypeError):
        write_json(p, {"format": "mine/1", "k": object()})  # fails while serialising
    assert read_json(p, Boom, "x", fmt="mine/1")["k"] == [1, 2]  # the old file is intact
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]  # and no temp is left behind
