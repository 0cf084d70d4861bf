"""The one parity comparison (mvd_edge.deploy.parity): cosine summary and error, NaN never agreeing."""

import numpy as np
import pytest

from mvd_edge.deploy.parity import compare


def test_compare_summarises_cosine_and_error():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = a.copy()
    b[:100] *= -1  # half the rows opposite
    p = compare(a, b)
    assert p.mean_cosine == pytest.approx(0.0) and p.min_cosine == pytest.approx(-1.0)
    assert p.p01_cosine == pytest.approx(-1.0)
    assert p.max_abs_err == pytest.approx(2 * np.abs(a[:100]).max())
    same = compare(a, 3 * a)
    assert same.cosine() == pytest.approx({"mean": 1.0, "min": 1.0, "p01": 1.0})
    with pytest.raises(ValueError, match="one shape"):
        compare(a, b[:3])


def test_rows_that_are_not_finite_count_as_the_worst():
    a = np.ones((4, 3))
    b = a.copy()
    b[2, 1] = np.nan
    p = compare(a, b)
    assert p.min_cosine == -1.0 and p.max_abs_err == np.inf
    assert p.mean_cosine == pytest.approx((3 - 1) / 4)
