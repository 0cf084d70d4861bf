"""Loss terms: zero iff distributions agree, independent values, gradient routing, symmetry."""

import math

import numpy as np
import pytest
import torch

from mvd_edge.train.losses import (
    LossWeights,
    batch_hard_triplet,
    dml_loss,
    mvd_loss,
    ranked_list_loss,
    vcd_loss,
    vml_loss,
    vsd_loss,
)


def _softmax(row):
    e = np.exp(np.asarray(row, dtype=np.float64) - max(row))
    return e / e.sum()


def _kl(p, q):
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))


def test_vsd_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    a = torch.randn(5, 7)
    assert float(vsd_loss(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(vsd_loss(a, torch.randn(5, 7))) > 1e-3


def test_vsd_matches_hand_computed_kl_teacher_first():
    v = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    z = torch.tensor([[0.1, 0.2, 0.3], [1.5, -0.5, 0.2]])
    expect = np.mean([_kl(_softmax(v[i].tolist()), _softmax(z[i].tolist())) for i in range(2)])
    assert float(vsd_loss(v, z)) == pytest.approx(expect, rel=1e-5)
    # KL is not symmetric: swapping teacher and student gives a different value
    assert float(vsd_loss(z, v)) != pytest.approx(expect, rel=1e-3)


def test_vsd_gradient_reaches_only_the_student():
    v = torch.randn(4, 6, requires_grad=True)
    z = torch.randn(4, 6, requires_grad=True)
    vsd_loss(v, z).backward()
    assert v.grad is None or torch.count_nonzero(v.grad) == 0
    assert z.grad is not None and torch.count_nonzero(z.grad) > 0


def test_vcd_value_and_gradient_routing():
    torch.manual_seed(1)
    v1, z1, v2, z2 = (torch.randn(3, 5, requires_grad=True) for _ in range(4))
    loss = vcd_loss(v1, z1, v2, z2)
    expect = np.mean([
        _kl(_softmax(v2[i].tolist()), _softmax(z1[i].tolist())) + _kl(_softmax(v1[i].tolist()), _softmax(z2[i].tolist()))
        for i in range(3)
    ])
    assert float(loss) == pytest.approx(expect, rel=1e-5)
    loss.backward()
    assert v1.grad is None and v2.grad is None  # teachers get nothing
    assert torch.count_nonzero(z1.grad) > 0 and torch.count_nonzero(z2.grad) > 0
    same = torch.randn(3, 5)
    assert float(vcd_loss(same, same, same, same)) == pytest.approx(0.0, abs=1e-6)


def test_vml_is_jsd_symmetric_bounded_and_trains_both_sides():
    torch.manual_seed(2)
    a = torch.randn(6, 4, requires_grad=True)
    b = torch.randn(6, 4, requires_grad=True)
    ab, ba = vml_loss(a, b), vml_loss(b, a)
    assert float(ab) == pytest.approx(float(ba), rel=1e-6)
    expect = []
    for i in range(6):
        p, q = _softmax(a[i].tolist()), _softmax(b[i].tolist())
        m = (p + q) / 2
        expect.append(0.5 * _kl(p, m) + 0.5 * _kl(q, m))
    assert float(ab) == pytest.approx(np.mean(expect), rel=1e-5)
    assert 0.0 < float(ab) <= math.log(2) + 1e-6
    ab.backward()
    assert torch.count_nonzero(a.grad) > 0 and torch.count_nonzero(b.grad) > 0
    same = torch.randn(6, 4)
    assert float(vml_loss(same, same)) == pytest.approx(0.0, abs=1e-6)


def test_vml_extreme_logits_stay_finite():
    a = torch.tensor([[80.0, -80.0, 0.0]])
    b = torch.tensor([[-80.0, 80.0, 0.0]])
    val = float(vml_loss(a, b))
    assert math.isfinite(val) and val == pytest.approx(math.log(2), rel=1e-4)


def test_dml_symmetric_sum_of_stopped_kls():
    a = torch.randn(4, 5, requires_grad=True)
    b = torch.randn(4, 5, requires_grad=True)
    loss = dml_loss(a, b)
    expect = np.mean([_kl(_softmax(a[i].tolist()), _softmax(b[i].tolist())) +
                      _kl(_softmax(b[i].tolist()), _softmax(a[i].tolist())) for i in range(4)])
    assert float(loss) == pytest.approx(expect, rel=1e-5)
    assert float(dml_loss(b, a)) == pytest.approx(float(loss), rel=1e-6)
    loss.backward()  # each side is both student and (stopped) teacher: both learn
    assert torch.count_nonzero(a.grad) > 0 and torch.count_nonzero(b.grad) > 0


def test_batch_hard_triplet_matches_brute_force():
    torch.manual_seed(3)
    f = torch.randn(8, 4)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    margin = 0.3
    d = torch.cdist(f, f)
    vals = []
    for i in range(8):
        pos = max(float(d[i, j]) for j in range(8) if j != i and pids[j] == pids[i])
        neg = min(float(d[i, j]) for j in range(8) if pids[j] != pids[i])
        vals.append(max(0.0, pos - neg + margin))
    assert float(batch_hard_triplet(f, pids, margin)) == pytest.approx(np.mean(vals), rel=1e-4)
    # well separated clusters: zero loss
    centers = torch.eye(4) * 100
    g = centers[pids] + 0.01 * torch.randn(8, 4)
    assert float(batch_hard_triplet(g, pids, margin)) == 0.0


def test_ranked_list_loss_zero_when_separated_positive_when_mixed():
    pids = torch.tensor([0, 0, 1, 1])
    sep = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    assert float(ranked_list_loss(sep, pids)) == pytest.approx(0.0, abs=1e-6)
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.01], [-1.0, 0.01]])
    assert float(ranked_list_loss(mixed, pids)) > 0.1


def _fake_outputs(n=8, c=5, f=6, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("rgb", "ir", "shared_x", "shared_g"):
        out[name] = {k: torch.randn(n, f if k == "f" else c, generator=g, requires_grad=requires_grad)
                     for k in ("f", "logits_v", "logits_z")}
    return out


def test_mvd_loss_weights_combine_terms_linearly():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = _fake_outputs()
    base = LossWeights(ce=1, metric=1, dml=0, vsd=0, vcd=0, vml=0)
    full = LossWeights(ce=1, metric=1, dml=0.5, vsd=2, vcd=3, vml=4)
    total_base, terms_base = mvd_loss(out, labels, base)
    total_full, terms = mvd_loss(out, labels, full)
    assert set(terms_base) == {"ce", "metric", "total"}
    assert set(terms) == {"ce", "metric", "dml", "vsd", "vcd", "vml", "total"}
    expect = terms["ce"] + terms["metric"] + 0.5 * terms["dml"] + 2 * terms["vsd"] + 3 * terms["vcd"] + 4 * terms["vml"]
    assert float(total_full) == pytest.approx(expect, rel=1e-5)
    assert float(total_base) == pytest.approx(terms_base["ce"] + terms_base["metric"], rel=1e-5)


def test_mvd_loss_vsd_gradient_does_not_reach_v_logits():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = _fake_outputs()
    total, _ = mvd_loss(out, labels, LossWeights(ce=0, metric=0, dml=0, vsd=1, vcd=1, vml=1))
    total.backward()
    for name in out:
        assert out[name]["logits_v"].grad is None
        assert torch.count_nonzero(out[name]["logits_z"].grad) > 0


def test_label_smoothing_is_applied():
    labels = torch.tensor([0, 1])
    out = _fake_outputs(n=2, requires_grad=False)
    for o in out.values():
        o["logits_v"] = torch.tensor([[50.0, 0, 0, 0, 0], [0, 50.0, 0, 0, 0]])
        o["logits_z"] = o["logits_v"].clone()
    _, sharp = mvd_loss(out, labels, LossWeights(ce=1, metric=0, dml=0, vsd=0, vcd=0, vml=0, label_smoothing=0.0))
    _, smooth = mvd_loss(out, labels, LossWeights(ce=1, metric=0, dml=0, vsd=0, vcd=0, vml=0, label_smoothing=0.1))
    assert sharp["ce"] < 1e-6
    assert smooth["ce"] > 1.0  # confident correct logits are penalised under eps=0.1
