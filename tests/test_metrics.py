"""mvd_edge.eval.metrics against a brute-force reference and hand-worked examples."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mvd_edge.eval.metrics import evaluate

# ----------------------------------------------------------------------------------
# Independent reference: plain Python loops, written from the AGW eval_metrics.py
# semantics (eval_sysu / eval_regdb / eval_llcm).


def _brute_force(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank):
    num_q, num_g = len(distmat), len(distmat[0])
    cmc_sum = [0.0] * max_rank
    aps, inps = [], []
    for q in range(num_q):
        ranked = sorted(range(num_g), key=lambda g: (float(distmat[q][g]), g))
        kept = []
        for g in ranked:
            if protocol == "sysu" and q_cams[q] == 3 and g_cams[g] == 2:
                continue
            if protocol == "llcm" and g_pids[g] == q_pids[q] and g_cams[g] == q_cams[q]:
                continue
            kept.append(g)
        hits = [1 if g_pids[g] == q_pids[q] else 0 for g in kept]
        n_pos = sum(hits)
        if n_pos == 0:
            continue
        # AP and INP on the full kept list
        found, precisions, last = 0, [], 0
        for i, h in enumerate(hits):
            if h:
                found += 1
                precisions.append(found / (i + 1))
                last = i + 1
        aps.append(sum(precisions) / n_pos)
        inps.append(n_pos / last)
        # CMC: unique identities for sysu/llcm, plain for regdb
        if protocol in ("sysu", "llcm"):
            seen, listing = set(), []
            for g in kept:
                if g_pids[g] not in seen:
                    seen.add(g_pids[g])
                    listing.append(g_pids[g])
        else:
            listing = [g_pids[g] for g in kept]
        first = next(i for i, p in enumerate(listing) if p == q_pids[q]) + 1
        for k in range(max_rank):
            if first <= k + 1:
                cmc_sum[k] += 1.0
    n_valid = len(aps)
    return [c / n_valid for c in cmc_sum], sum(aps) / n_valid, sum(inps) / n_valid, n_valid


def _random_case(rng, num_q, num_g, n_ids, cams_q, cams_g):
    # distinct distances (no ties): a random permutation of 0..Q*G-1
    distmat = rng.permutation(num_q * num_g).reshape(num_q, num_g).astype(np.float64) / 7.0
    q_pids = rng.integers(0, n_ids, size=num_q)
    g_pids = rng.integers(0, n_ids, size=num_g)
    q_cams = rng.choice(cams_q, size=num_q)
    g_cams = rng.choice(cams_g, size=num_g)
    return distmat, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm"])
@pytest.mark.parametrize("case", range(6))
def test_matches_brute_force_on_random_inputs(protocol, case):
    rng = np.random.default_rng(1000 + case)
    num_q = int(rng.integers(1, 40))
    num_g = int(rng.integers(1, 60))
    if protocol == "sysu":
        cams_q, cams_g = [3, 6], [1, 2, 4, 5]
    else:
        cams_q = cams_g = [1, 2, 3]
    distmat, q_pids, g_pids, q_cams, g_cams = _random_case(rng, num_q, num_g, 8, cams_q, cams_g)
    max_rank = int(rng.integers(1, 30))  # sometimes larger than the gallery
    try:
        ref = _brute_force(distmat.tolist(), q_pids.tolist(), g_pids.tolist(), q_cams.tolist(),
                           g_cams.tolist(), protocol, max_rank)
    except ZeroDivisionError:  # no valid query in this draw
        with pytest.raises(ValueError, match="no valid query"):
            evaluate(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank)
        return
    out = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank)
    assert out["cmc"].shape == (max_rank,)
    np.testing.assert_allclose(out["cmc"], ref[0], rtol=0, atol=1e-12)
    assert out["mAP"] == pytest.approx(ref[1], abs=1e-12)
    assert out["mINP"] == pytest.approx(ref[2], abs=1e-12)
    assert out["num_valid_queries"] == ref[3]


def test_matches_brute_force_on_a_larger_input_spanning_chunks():
    rng = np.random.default_rng(7)
    distmat, q_pids, g_pids, q_cams, g_cams = _random_case(rng, 700, 90, 20, [3, 6], [1, 2, 4, 5])
    for protocol in ("sysu", "regdb", "llcm"):
        ref = _brute_force(distmat.tolist(), q_pids.tolist(), g_pids.tolist(), q_cams.tolist(),
                           g_cams.tolist(), protocol, 20)
        out = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, protocol)
        np.testing.assert_allclose(out["cmc"], ref[0], atol=1e-12)
        assert out["mAP"] == pytest.approx(ref[1], abs=1e-12)
        assert out["mINP"] == pytest.approx(ref[2], abs=1e-12)


# ----------------------------------------------------------------------------------
# Hand-worked examples


def test_hand_worked_single_query_regdb():
    # ranked gallery pids: [2, 1, 2, 1, 3]; positives at ranks 2 and 4
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    out = evaluate(distmat, np.array([1]), np.array([2, 1, 2, 1, 3]), None, None, "regdb", max_rank=5)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)  # 0.5
    assert out["mINP"] == pytest.approx(2 / 4)
    assert out["num_valid_queries"] == 1


def test_hand_worked_ap_inp_with_unsorted_distances():
    # distances put the gallery in order [g3, g0, g4, g1, g2]; pids there: [7, 5, 7, 9, 7]
    distmat = np.array([[0.4, 0.8, 0.9, 0.1, 0.5]])
    g_pids = np.array([5, 9, 7, 7, 7])
    out = evaluate(distmat, np.array([7]), g_pids, None, None, "regdb", max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [1, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)
    assert out["mINP"] == pytest.approx(3 / 5)


def test_sysu_removes_every_cam2_item_for_cam3_queries_only():
    # gallery (ranked order = index order): pid/cam
    g_pids = np.array([1, 2, 1, 3])
    g_cams = np.array([2, 2, 1, 4])
    distmat = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    q_pids = np.array([1, 1])
    # query 0 from cam 3: both cam-2 items go -> ranked [1(c1), 3]; query 1 from cam 6 keeps all
    out3 = evaluate(distmat[:1], q_pids[:1], g_pids, np.array([3]), g_cams, "sysu", max_rank=3)
    np.testing.assert_array_equal(out3["cmc"], [1, 1, 1])
    assert out3["mAP"] == pytest.approx(1.0)
    assert out3["mINP"] == pytest.approx(1.0)
    out6 = evaluate(distmat[1:], q_pids[1:], g_pids, np.array([6]), g_cams, "sysu", max_rank=3)
    np.testing.assert_array_equal(out6["cmc"], [1, 1, 1])
    assert out6["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert out6["mINP"] == pytest.approx(2 / 3)


def test_sysu_cam3_query_whose_positives_are_all_in_cam2_is_skipped():
    g_pids = np.array([1, 2, 3])
    g_cams = np.array([2, 1, 1])
    distmat = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]])
    out = evaluate(distmat, np.array([1, 2]), g_pids, np.array([3, 6]), g_cams, "sysu", max_rank=2)
    assert out["num_valid_queries"] == 1  # only the cam-6 query for pid 2 counts
    np.testing.assert_array_equal(out["cmc"], [1, 1])
    with pytest.raises(ValueError, match="no valid query"):
        evaluate(distmat[:1], np.array([1]), g_pids, np.array([3]), g_cams, "sysu")


def test_unique_identity_cmc_for_sysu_vs_plain_for_regdb():
    # ranked pids: [5, 5, 5, 7, 1]; the query (pid 1) is 5th in the list but 3rd identity
    g_pids = np.array([5, 5, 5, 7, 1])
    g_cams = np.array([1, 1, 4, 5, 1])
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    sysu = evaluate(distmat, np.array([1]), g_pids, np.array([6]), g_cams, "sysu", max_rank=5)
    regdb = evaluate(distmat, np.array([1]), g_pids, np.array([6]), g_cams, "regdb", max_rank=5)
    np.testing.assert_array_equal(sysu["cmc"], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(regdb["cmc"], [0, 0, 0, 0, 1])
    # AP and INP are computed on the full list in both
    assert sysu["mAP"] == regdb["mAP"] == pytest.approx(1 / 5)
    assert sysu["mINP"] == regdb["mINP"] == pytest.approx(1 / 5)


def test_llcm_removes_same_identity_same_camera_only():
    # ranked: [pid1 cam2 (same id+cam: removed), pid2 cam2 (kept), pid1 cam4]
    g_pids = np.array([1, 2, 1])
    g_cams = np.array([2, 2, 4])
    distmat = np.array([[0.1, 0.2, 0.3]])
    out = evaluate(distmat, np.array([1]), g_pids, np.array([2]), g_cams, "llcm", max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1])
    assert out["mAP"] == pytest.approx(1 / 2)
    assert out["mINP"] == pytest.approx(1 / 2)


def test_max_rank_beyond_gallery_pads_with_last_value():
    distmat = np.array([[0.2, 0.1], [0.1, 0.2]])
    out = evaluate(distmat, np.array([1, 1]), np.array([1, 2]), None, None, "regdb", max_rank=6)
    # query 0 hits at rank 1, query 1 at rank 2
    np.testing.assert_array_equal(out["cmc"], [0.5, 1, 1, 1, 1, 1])
    sysu = evaluate(distmat, np.array([1, 1]), np.array([1, 2]), np.array([3, 6]), np.array([1, 4]),
                    "sysu", max_rank=20)
    assert sysu["cmc"].shape == (20,)
    assert sysu["cmc"][-1] == 1.0


def test_ties_are_broken_by_gallery_order():
    distmat = np.zeros((1, 3))
    out = evaluate(distmat, np.array([9]), np.array([4, 9, 9]), None, None, "regdb", max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1])
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_similarity_must_be_negated():
    sim = np.array([[0.9, 0.1]])
    out = evaluate(-sim, np.array([1]), np.array([1, 2]), None, None, "regdb", max_rank=1)
    assert out["cmc"][0] == 1.0


# ----------------------------------------------------------------------------------
# Errors


def _ok_inputs():
    return np.ones((2, 3)), np.array([1, 2]), np.array([1, 2, 3]), np.array([3, 6]), np.array([1, 2, 4])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: (np.ones(3),) + a[1:], "2-D"),
        (lambda a: (np.ones((0, 3)),) + a[1:], "at least one"),
        (lambda a: (a[0], np.array([1, 2, 3])) + a[2:], "q_pids has 3"),
        (lambda a: (a[0], a[1], np.array([[1, 2, 3]])) + a[3:], "g_pids must be 1-D"),
        (lambda a: a[:3] + (np.array([3]), a[4]), "q_cams has 1"),
        (lambda a: a[:4] + (np.array([1, 2]),), "g_cams has 2"),
        (lambda a: a[:3] + (None, None), "needs q_cams"),
        (lambda a: (np.full((2, 3), np.nan),) + a[1:], "NaN"),
    ],
)
def test_bad_inputs_raise_value_error(mutate, message):
    args = mutate(_ok_inputs())
    with pytest.raises(ValueError, match=message):
        evaluate(*args, "sysu")


def test_unknown_protocol_and_bad_max_rank():
    args = _ok_inputs()
    with pytest.raises(ValueError, match="unknown metric protocol"):
        evaluate(*args, "market")
    with pytest.raises(ValueError, match="max_rank"):
        evaluate(*args, "regdb", max_rank=0)


def test_no_valid_query_raises():
    with pytest.raises(ValueError, match="no valid query"):
        evaluate(np.ones((2, 2)), np.array([1, 2]), np.array([3, 4]), None, None, "regdb")


def test_metrics_module_does_not_import_torch():
    code = "import sys, mvd_edge.eval.metrics; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
