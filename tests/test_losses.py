"""Loss terms: zero iff distributions agree, independent values, gradient routing, symmetry."""

import math

import numpy as np
import pytest
import torch

from mvd_edge.core.config import LossConfig
from mvd_edge.train.losses import (
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
    base = LossConfig(ce=1, metric=1, dml=0, vsd=0, vcd=0, vml=0)
    full = LossConfig(ce=1, metric=1, dml=0.5, vsd=2, vcd=3, vml=4)
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
    total, _ = mvd_loss(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=1, vcd=1, vml=1))
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
    _, sharp = mvd_loss(out, labels, LossConfig(ce=1, metric=0, dml=0, vsd=0, vcd=0, vml=0, label_smoothing=0.0))
    _, smooth = mvd_loss(out, labels, LossConfig(ce=1, metric=0, dml=0, vsd=0, vcd=0, vml=0, label_smoothing=0.1))
    assert sharp["ce"] < 1e-6
    assert smooth["ce"] > 1.0  # confident correct logits are penalised under eps=0.1


# ---------------------------------------------------------------- pairing, placement, ramp, release form
from mvd_edge.core.modality import Modality  # noqa: E402
from mvd_edge.train.losses import (  # noqa: E402
    cross_modal_rows,
    kl_teacher_student,
    loss_terms,
    ramp_factor,
    release_kl,
    trunk_gradient_fractions,
    view_pairs,
)

V, I = int(Modality.VISIBLE), int(Modality.INFRARED)  # noqa: E741 (the paper's V / I)


def _np_vcd(v1, z1, v2, z2):
    """Hand VCD over paired rows: mean_i KL(p(v2_i)||p(z1_i)) + mean_i KL(p(v1_i)||p(z2_i))."""
    n = len(v1)
    return (np.mean([_kl(_softmax(v2[i]), _softmax(z1[i])) for i in range(n)])
            + np.mean([_kl(_softmax(v1[i]), _softmax(z2[i])) for i in range(n)]))


def _np_jsd(a, b):
    out = []
    for i in range(len(a)):
        p, q = _softmax(a[i]), _softmax(b[i])
        m = (p + q) / 2
        out.append(0.5 * _kl(p, m) + 0.5 * _kl(q, m))
    return float(np.mean(out))


def _batch(seed=0):
    """8 samples, 2 identities; identity 0 laid out V V I I, identity 1 interleaved I V I V."""
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    mods = torch.tensor([V, V, I, I, I, V, I, V])
    out = _fake_outputs(n=8, c=5, seed=seed)
    return out, labels, mods


def test_cross_modal_rows_pair_jth_visible_with_jth_infrared_of_the_same_identity():
    _, labels, mods = _batch()
    rv, ri = cross_modal_rows(labels, mods)
    assert rv.tolist() == [0, 1, 5, 7]
    assert ri.tolist() == [2, 3, 4, 6]
    # an identity seen in one modality only contributes nothing; unequal counts pair min(a, b)
    rv, ri = cross_modal_rows(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([V, V, I, V, V]))
    assert rv.tolist() == [0] and ri.tolist() == [2]
    with pytest.raises(ValueError, match="both modalities"):
        view_pairs("cross-modal", torch.tensor([0, 1]), torch.tensor([V, V]))


@pytest.mark.parametrize("pairing", ["shared", "both", "cross-modal", "cross-all"])
def test_each_pairing_pairs_exactly_the_tensors_it_names(pairing):
    out, labels, mods = _batch()
    lv = {n: out[n]["logits_v"].detach().numpy().astype(np.float64) for n in out}
    lz = {n: out[n]["logits_z"].detach().numpy().astype(np.float64) for n in out}
    rv, ri = [0, 1, 5, 7], [2, 3, 4, 6]
    every = list(range(8))
    hand = {  # (obs_a, rows_a, obs_b, rows_b) per pair, written out by hand
        "shared": [("shared_x", every, "shared_g", every)],
        "both": [("rgb", every, "ir", every), ("shared_x", every, "shared_g", every)],
        "cross-modal": [("shared_x", rv, "shared_x", ri)],
        "cross-all": [("rgb", rv, "ir", ri), ("shared_x", rv, "shared_x", ri)],
    }
    w = LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=1, vml=1, vcd_pairs=pairing)
    terms = loss_terms(out, labels, w, mods)
    exp_vcd = np.mean([_np_vcd(lv[a][ra], lz[a][ra], lv[b][rb], lz[b][rb]) for a, ra, b, rb in hand[pairing]])
    exp_vml = np.mean([_np_jsd(lz[a][ra], lz[b][rb]) for a, ra, b, rb in hand[pairing]])
    assert float(terms["vcd"]) == pytest.approx(exp_vcd, rel=1e-5)
    assert float(terms["vml"]) == pytest.approx(exp_vml, rel=1e-5)
    # every other pairing gives a different value on this batch (the test can tell them apart)
    for other in hand:
        if other != pairing:
            alt = loss_terms(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=1, vml=1, vcd_pairs=other),
                             mods)
            assert abs(float(alt["vcd"]) - exp_vcd) > 1e-3


@pytest.mark.parametrize("pairing", ["shared", "both", "cross-modal", "cross-all"])
def test_vcd_gradient_reaches_only_the_students_and_vml_both_sides(pairing):
    out, labels, mods = _batch(seed=3)
    terms = loss_terms(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=1, vml=0, vcd_pairs=pairing), mods)
    terms["vcd"].backward()
    for n in out:
        assert out[n]["logits_v"].grad is None  # teachers: stop-gradient
    involved = {o for a, b in [(p.obs_a, p.obs_b) for p in view_pairs(pairing, labels, mods)] for o in (a, b)}
    for n in out:
        g = out[n]["logits_z"].grad
        assert (g is not None and torch.count_nonzero(g) > 0) == (n in involved)
    out, labels, mods = _batch(seed=4)
    terms = loss_terms(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=0, vml=1, vcd_pairs=pairing), mods)
    terms["vml"].backward()
    for p in view_pairs(pairing, labels, mods):  # VML trains both sides of every pair
        for obs, rows in ((p.obs_a, p.rows_a), (p.obs_b, p.rows_b)):
            g = out[obs]["logits_z"].grad
            g = g if rows is None else g[rows]
            assert torch.count_nonzero(g.abs().sum(1)) == len(g)


def test_cross_modal_vml_is_symmetric_in_the_two_modalities():
    out, labels, mods = _batch(seed=5)
    w = LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=0, vml=1, vcd_pairs="cross-modal")
    swapped = torch.where(mods == V, torch.tensor(I), torch.tensor(V))  # visible and infrared roles exchanged
    a = float(loss_terms(out, labels, w, mods)["vml"])
    b = float(loss_terms(out, labels, w, swapped)["vml"])
    assert a == pytest.approx(b, rel=1e-6)
    # VCD is not symmetric in general, but swapping roles swaps its two halves: same sum
    w2 = LossConfig(ce=0, metric=0, dml=0, vsd=0, vcd=1, vml=0, vcd_pairs="cross-modal")
    assert float(loss_terms(out, labels, w2, mods)["vcd"]) == pytest.approx(
        float(loss_terms(out, labels, w2, swapped)["vcd"]), rel=1e-6)


def test_vsd_placement_specific_uses_rgb_and_ir_only():
    out, labels, _ = _batch(seed=6)
    spec = loss_terms(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=1, vcd=0, vml=0, vsd_on="specific"))
    every = loss_terms(out, labels, LossConfig(ce=0, metric=0, dml=0, vsd=1, vcd=0, vml=0, vsd_on="all"))
    each = {n: float(vsd_loss(out[n]["logits_v"], out[n]["logits_z"])) for n in out}
    assert float(spec["vsd"]) == pytest.approx((each["rgb"] + each["ir"]) / 2, rel=1e-6)
    assert float(every["vsd"]) == pytest.approx(np.mean(list(each.values())), rel=1e-6)


def test_temperature_softens_and_scales_by_t_squared():
    t, s = torch.tensor([[3.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.5]])
    T = 4.0
    expect = _kl(_softmax((t[0] / T).tolist()), _softmax((s[0] / T).tolist())) * T * T
    assert float(kl_teacher_student(t, s, temperature=T)) == pytest.approx(expect, rel=1e-5)
    p, q = _softmax((s[0] / T).tolist()), _softmax((t[0] / T).tolist())
    m = (p + q) / 2
    assert float(vml_loss(s, t, temperature=T)) == pytest.approx((0.5 * _kl(p, m) + 0.5 * _kl(q, m)) * T * T, rel=1e-5)


def test_release_form_matches_a_hand_computation():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]], requires_grad=True)
    # release: kl_div(input=softmax(teacher.detach()), target=softmax(student)), default reduction
    # "mean" over all N*C elements: (1/(N*C)) sum_i sum_c ps * (log ps - pt)
    pt = [_softmax(r) for r in teacher.tolist()]
    ps = [_softmax(r) for r in student.detach().tolist()]
    expect = sum(b * (math.log(b) - a) for i in range(2) for a, b in zip(pt[i], ps[i])) / (2 * 3)
    val = release_kl(teacher, student)
    assert float(val) == pytest.approx(expect, rel=1e-6)
    assert float(kl_teacher_student(teacher, student, form="release")) == pytest.approx(expect, rel=1e-6)
    # it is not the KL, and it is not zero when the distributions agree (unlike the KL)
    assert float(val) != pytest.approx(float(kl_teacher_student(teacher, student)), rel=1e-2)
    assert abs(float(release_kl(teacher, teacher))) > 0.05
    # its gradient on the student logits is far weaker than the KL's
    val.backward()
    g_release = student.grad.clone()
    student.grad = None
    kl_teacher_student(teacher, student).backward()
    assert float(g_release.norm()) < 0.5 * float(student.grad.norm())


def test_ramp_is_zero_during_warmup_then_linear_to_full():
    assert ramp_factor(0.0, warmup=2, full_at=6) == 0.0
    assert ramp_factor(1.99, warmup=2, full_at=6) == 0.0
    assert ramp_factor(2.0, warmup=2, full_at=6) == 0.0
    assert ramp_factor(4.0, warmup=2, full_at=6) == pytest.approx(0.5)
    assert ramp_factor(6.0, warmup=2, full_at=6) == 1.0
    assert ramp_factor(11.5, warmup=2, full_at=6) == 1.0
    assert ramp_factor(2.5, warmup=2, full_at=1) == 1.0  # full_at inside the warm-up: a step at its end
    # the ramp scales VCD and VML only
    out, labels, mods = _batch(seed=7)
    w = LossConfig(ce=1, metric=0, dml=0, vsd=1, vcd=1, vml=1)
    t0, parts = mvd_loss(out, labels, w, mods, ramp=0.0)
    assert parts["total"] == pytest.approx(parts["ce"] + parts["vsd"], rel=1e-6)
    _, half = mvd_loss(out, labels, w, mods, ramp=0.5)
    assert half["total"] == pytest.approx(parts["ce"] + parts["vsd"] + 0.5 * (parts["vcd"] + parts["vml"]), rel=1e-6)


def test_trunk_gradient_fractions_are_norm_ratios():
    torch.manual_seed(0)
    wgt = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(5, 4)
    y = x @ wgt
    terms = {"ce": (y ** 2).sum(), "vcd": y.sum()}
    w = LossConfig(ce=1, metric=0, dml=0, vsd=0, vcd=2, vml=0)
    fr = trunk_gradient_fractions(terms, w, [wgt], ramp=0.5)
    g_ce = torch.autograd.grad((y ** 2).sum(), wgt, retain_graph=True)[0]
    g_vcd = torch.autograd.grad(y.sum(), wgt, retain_graph=True)[0]
    assert fr["vcd"] == pytest.approx(float((2 * 0.5 * g_vcd).norm() / g_ce.norm()), rel=1e-5)
    assert wgt.grad is None  # nothing accumulated: the training step's backward is untouched
