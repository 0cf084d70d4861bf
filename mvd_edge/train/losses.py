"""MVD losses, with the paper's formulas done right (PAPER.md, docs/method.md).

Notation: ``p(y|v)`` and ``p(y|z)`` are the softmax predictions (at temperature ``T``) of
the identity classifiers on an observation ``v`` and on its bottleneck representation ``z``.

* VSD (per observation):           KL( sg[p(y|v)] || p(y|z) )
* VCD (across the two views 1, 2): KL( sg[p(y|v2)] || p(y|z1) ) + KL( sg[p(y|v1)] || p(y|z2) )
* VML (across the two views):      JSD( p(y|z1) || p(y|z2) )   (symmetric, both sides learn)
* DML (the modality-specific branches' v predictions): KL(sg[p_a] || p_b) + KL(sg[p_b] || p_a)

``sg`` is stop-gradient: the teacher side receives no gradient. ``torch.nn.functional.
kl_div(input, target)`` computes KL(target || input) and expects ``input`` as log-
probabilities; the authors' release passed probabilities there (``kl_form="release"``
reproduces that form as a control; see :func:`release_kl`). With a temperature ``T`` the
distillation terms (VSD, VCD, VML) compare ``softmax(logits / T)`` and are scaled by ``T**2``
(Hinton et al.) so their gradient scale does not depend on ``T``.

Where VCD and VML act (config ``loss.vcd_pairs``, one of ``VCD_PAIRINGS``); a *view pair* names two
observations and which rows (samples) of the batch stand for each side:

* ``shared``:      the shared branch on an image ``x`` and on its own grayscale ``g``
  (``shared_x`` row i with ``shared_g`` row i) - what the authors' release pairs;
* ``both``:        ``shared`` plus the modality-specific pair on the same image
  (``rgb`` on x row i with ``ir`` on g row i);
* ``cross-modal``: the shared branch on visible sample j with the shared branch on infrared
  sample j *of the same identity* (``shared_x`` rows; the j-th visible and j-th infrared
  image of each identity in batch order, as the sampler lays them out) - two views of one
  person through the two modalities, as the paper describes VCD/VML on the modal-shared branch;
* ``cross-all``:   ``cross-modal`` plus each specific branch on its own modality
  (``rgb`` on visible sample j with ``ir`` on infrared sample j).

VSD placement (config ``loss.vsd_on``, one of ``VSD_PLACEMENTS``): ``all`` four observations, or
``specific`` (``rgb`` and ``ir`` only, as in the release).

Total: L = ce*CE + metric*Metric + dml*DML + vsd*VSD + ramp*(vcd*VCD + vml*VML), each term
averaged over the observations/pairs it applies to so the weights do not depend on how many
there are. ``ramp`` in [0, 1] is the trainer's ramp-in factor (:func:`ramp_factor`). The weights and
placement come from the training config's ``loss`` section (:class:`~mvd_edge.core.config.LossConfig`),
whose loader checks their values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mvd_edge.core.config import KL_FORMS, VCD_PAIRINGS, LossConfig
from mvd_edge.core.modality import Modality

DML_PAIR: tuple[str, str] = ("rgb", "ir")
SPECIFIC: tuple[str, ...] = ("rgb", "ir")
# the terms whose gradient on the shared trunk the trainer logs as a fraction of CE's
TERMS: tuple[str, ...] = ("ce", "metric", "dml", "vsd", "vcd", "vml")


@dataclass(frozen=True)
class ViewPair:
    """Two observations and the batch rows that stand for each side (``None`` = every row, in order).

    ``rows_a[j]`` and ``rows_b[j]`` are paired; both are ``LongTensor [M]`` or both ``None``.
    """

    obs_a: str
    obs_b: str
    rows_a: torch.Tensor | None = None
    rows_b: torch.Tensor | None = None

    def take(self, outputs: dict[str, dict[str, torch.Tensor]], key: str) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = outputs[self.obs_a][key], outputs[self.obs_b][key]
        if self.rows_a is not None:
            a, b = a[self.rows_a], b[self.rows_b]
        return a, b


def cross_modal_rows(labels: torch.Tensor, modalities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair visible sample j with infrared sample j of the same identity, in batch order.

    ``labels [N]`` identity labels, ``modalities [N]`` ``Modality`` values. Returns
    ``(visible_rows [M], infrared_rows [M])``; an identity with ``a`` visible and ``b``
    infrared samples contributes ``min(a, b)`` pairs. Identities seen in one modality only
    contribute none.
    """
    labels_l = labels.tolist()
    mods_l = [Modality(int(m)) for m in modalities.tolist()]
    vis: dict[int, list[int]] = {}
    ir: dict[int, list[int]] = {}
    for i, (y, m) in enumerate(zip(labels_l, mods_l)):
        (vis if m is Modality.VISIBLE else ir).setdefault(y, []).append(i)
    rows_v: list[int] = []
    rows_i: list[int] = []
    for y in dict.fromkeys(labels_l):  # identities in order of first appearance
        v, r = vis.get(y, []), ir.get(y, [])
        m = min(len(v), len(r))
        rows_v += v[:m]
        rows_i += r[:m]
    dev = labels.device
    return torch.tensor(rows_v, dtype=torch.long, device=dev), torch.tensor(rows_i, dtype=torch.long, device=dev)


def view_pairs(pairing: str, labels: torch.Tensor | None = None,
               modalities: torch.Tensor | None = None) -> list[ViewPair]:
    """The view pairs VCD and VML act on for ``pairing`` (see the module docstring)."""
    if pairing == "shared":
        return [ViewPair("shared_x", "shared_g")]
    if pairing == "both":
        return [ViewPair("rgb", "ir"), ViewPair("shared_x", "shared_g")]
    if pairing in ("cross-modal", "cross-all"):
        if labels is None or modalities is None:
            raise ValueError(f"loss.vcd_pairs={pairing!r} needs the batch's labels and modalities")
        rv, ri = cross_modal_rows(labels, modalities)
        if len(rv) == 0:
            raise ValueError(f"loss.vcd_pairs={pairing!r}: the batch holds no identity seen in both modalities")
        pairs = [ViewPair("shared_x", "shared_x", rv, ri)]
        if pairing == "cross-all":
            pairs.insert(0, ViewPair("rgb", "ir", rv, ri))
        return pairs
    raise ValueError(f"unknown loss.vcd_pairs {pairing!r}; choose one of {', '.join(VCD_PAIRINGS)}")


def release_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """The KL call of the authors' release (``reid/trainers.py``), reproduced as a control.

    The release writes ``kl_div(input=softmax(teacher.detach()), target=softmax(student))`` with
    PyTorch's default ``reduction="mean"``: probabilities where log-probabilities belong, the
    student as the *target*, and a mean over all N*C elements. That computes
    ``(1/(N*C)) * sum_i sum_c p_s[i,c] * (log p_s[i,c] - p_t[i,c])``: minus the student's entropy
    (a confidence penalty) minus its overlap with the teacher, divided by the class count. It is
    not a divergence (it is not 0 when the two agree) and its gradient is tiny. ``[N, C]`` -> scalar.
    """
    teacher = F.softmax(teacher_logits.detach().float(), dim=1)
    return F.kl_div(teacher, F.softmax(student_logits.float(), dim=1), reduction="mean")


def kl_teacher_student(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0,
                       form: str = "correct") -> torch.Tensor:
    """KL( sg[softmax(teacher/T)] || softmax(student/T) ) * T**2, mean over the batch. ``[N, C]`` -> scalar.

    ``form="release"`` gives :func:`release_kl` instead (temperature ignored: the release has none).
    """
    if form == "release":
        return release_kl(teacher_logits, student_logits)
    if form != "correct":
        raise ValueError(f"unknown loss.kl_form {form!r}; choose one of {', '.join(KL_FORMS)}")
    t = float(temperature)
    target = F.softmax(teacher_logits.detach().float() / t, dim=1)
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), target, reduction="batchmean")
    return kl * (t * t)


def vsd_loss(logits_v: torch.Tensor, logits_z: torch.Tensor, temperature: float = 1.0,
             form: str = "correct") -> torch.Tensor:
    """Variational self-distillation: KL( sg[p(y|v)] || p(y|z) )."""
    return kl_teacher_student(logits_v, logits_z, temperature, form)


def vcd_loss(logits_v1: torch.Tensor, logits_z1: torch.Tensor, logits_v2: torch.Tensor,
             logits_z2: torch.Tensor, temperature: float = 1.0, form: str = "correct") -> torch.Tensor:
    """Variational cross-distillation: KL( sg[p(y|v2)] || p(y|z1) ) + KL( sg[p(y|v1)] || p(y|z2) )."""
    return (kl_teacher_student(logits_v2, logits_z1, temperature, form)
            + kl_teacher_student(logits_v1, logits_z2, temperature, form))


def vml_loss(logits_z1: torch.Tensor, logits_z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Variational mutual learning: Jensen-Shannon divergence JSD( p(y|z1) || p(y|z2) ) * T**2, batch mean."""
    t = float(temperature)
    logp1 = F.log_softmax(logits_z1.float() / t, dim=1)
    logp2 = F.log_softmax(logits_z2.float() / t, dim=1)
    # log m = log((p1 + p2) / 2), computed stably
    logm = torch.logsumexp(torch.stack([logp1, logp2]), dim=0) - torch.log(torch.tensor(2.0, device=logp1.device))
    kl1 = (logp1.exp() * (logp1 - logm)).sum(dim=1)
    kl2 = (logp2.exp() * (logp2 - logm)).sum(dim=1)
    return (0.5 * (kl1 + kl2)).mean() * (t * t)


def dml_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Deep mutual learning between two branches: KL(sg[p_a] || p_b) + KL(sg[p_b] || p_a)."""
    return kl_teacher_student(logits_a, logits_b) + kl_teacher_student(logits_b, logits_a)


def ramp_factor(progress: float, warmup: float, full_at: float) -> float:
    """Ramp-in of VCD/VML: 0 before ``warmup`` (epochs), linear to 1 at ``full_at`` (epochs), then 1.

    ``progress`` is the training position in epochs (fractional within an epoch). With
    ``full_at <= warmup`` the weight steps from 0 to 1 at the end of the warm-up.
    """
    if progress < warmup:
        return 0.0
    if full_at <= warmup or progress >= full_at:
        return 1.0
    return (progress - warmup) / (full_at - warmup)


def pairwise_distances(feats: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[N, D]`` -> ``[N, N]`` (numerically safe at 0)."""
    feats = feats.float()
    sq = (feats * feats).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * feats @ feats.t()
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet(feats: torch.Tensor, pids: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017): hardest positive, hardest negative per anchor.

    ``feats [N, D]``, ``pids [N]`` (int). Anchors without a positive or a negative are skipped.
    """
    dist = pairwise_distances(feats)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        return feats.sum() * 0.0
    hardest_pos = (dist * pos_mask).max(dim=1).values
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def ranked_list_loss(feats: torch.Tensor, pids: torch.Tensor, margin: float = 0.4, alpha: float = 1.2,
                     temperature: float = 10.0) -> torch.Tensor:
    """Ranked list loss (Wang et al., CVPR 2019), the metric loss of the MVD release.

    Positives are pulled inside ``alpha - margin``; negatives closer than ``alpha`` are
    pushed out, weighted by ``exp(temperature * (alpha - d))`` normalised per anchor.
    Features are L2-normalised first, as in the release.
    """
    feats = F.normalize(feats.float(), dim=1)
    dist = pairwise_distances(feats)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    pos_mask = (same & ~eye).float()
    neg_mask = (~same).float()
    pos_viol = F.relu(dist - (alpha - margin)) * pos_mask
    n_pos = (pos_viol > 0).float().sum(1).clamp_min(1.0)
    loss_pos = pos_viol.sum(1) / n_pos
    neg_viol = F.relu(alpha - dist) * neg_mask
    w = torch.exp(temperature * (alpha - dist)).detach() * (neg_viol > 0).float()
    loss_neg = (w * neg_viol).sum(1) / w.sum(1).clamp_min(1e-12)
    return (loss_pos + loss_neg).mean()


def term_weight(w: LossConfig, term: str, ramp: float = 1.0) -> float:
    """The factor a term enters the total with: its weight in ``w``, times ``ramp`` for VCD and VML."""
    return getattr(w, term) * (ramp if term in ("vcd", "vml") else 1.0)


def loss_terms(outputs: dict[str, dict[str, torch.Tensor]], labels: torch.Tensor, w: LossConfig,
               modalities: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The unweighted MVD terms (``TERMS``) from ``MVDNet`` training outputs; weight-0 terms are skipped.

    ``outputs[obs]`` has ``f [N,F]``, ``logits_v [N,C]``, ``logits_z [N,C]``; ``labels [N]``
    are identity labels 0..C-1; ``modalities [N]`` (``Modality`` values) are needed by the
    cross-modal pairings only.
    """
    names = list(outputs)
    t, form = w.temperature, w.kl_form
    terms: dict[str, torch.Tensor] = {}
    if w.ce:
        terms["ce"] = torch.stack([F.cross_entropy(outputs[n][k].float(), labels, label_smoothing=w.label_smoothing)
                                   for n in names for k in ("logits_v", "logits_z")]).mean()
    if w.metric:
        terms["metric"] = torch.stack([batch_hard_triplet(outputs[n]["f"], labels, w.margin)
                                       if w.metric_kind == "triplet" else ranked_list_loss(outputs[n]["f"], labels)
                                       for n in names]).mean()
    if w.dml:
        a, b = DML_PAIR
        terms["dml"] = dml_loss(outputs[a]["logits_v"], outputs[b]["logits_v"])
    if w.vsd:
        on = [n for n in names if w.vsd_on == "all" or n in SPECIFIC]
        terms["vsd"] = torch.stack([vsd_loss(outputs[n]["logits_v"], outputs[n]["logits_z"], t, form)
                                    for n in on]).mean()
    if w.vcd or w.vml:
        pairs = view_pairs(w.vcd_pairs, labels, modalities)
        if w.vcd:
            vcd = []
            for pair in pairs:
                (v1, v2), (z1, z2) = pair.take(outputs, "logits_v"), pair.take(outputs, "logits_z")
                vcd.append(vcd_loss(v1, z1, v2, z2, t, form))
            terms["vcd"] = torch.stack(vcd).mean()
        if w.vml:
            terms["vml"] = torch.stack([vml_loss(*pair.take(outputs, "logits_z"), temperature=t)
                                        for pair in pairs]).mean()
    return terms


def mvd_loss(outputs: dict[str, dict[str, torch.Tensor]], labels: torch.Tensor, w: LossConfig,
             modalities: torch.Tensor | None = None, ramp: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Total MVD loss (see the module docstring); returns (loss, per-term floats + ``total``).

    ``ramp`` in [0, 1] scales VCD and VML (the trainer's ramp-in). Terms with weight 0 are not
    computed. See :func:`loss_terms` for the inputs.
    """
    terms = loss_terms(outputs, labels, w, modalities)
    return weighted_total(terms, {k: term_weight(w, k, ramp) for k in terms})


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of ``terms``, and what the log records of it: each term's value and ``total``."""
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}


def trunk_gradient_fractions(terms: dict[str, torch.Tensor], w: LossConfig, params: list[torch.Tensor],
                             ramp: float = 1.0) -> dict[str, float]:
    """Norm of each weighted term's gradient on ``params`` (e.g. the shared trunk), as a fraction of CE's.

    Uses ``torch.autograd.grad`` with the graph retained, so the training step's own backward
    still runs afterwards; nothing is accumulated into ``.grad``. Returns ``{term: fraction}``
    for every term but ``ce`` (empty without a CE term or when CE's gradient there is 0).
    """
    if "ce" not in terms:
        return {}
    norms = {}
    for k, v in terms.items():
        scaled = term_weight(w, k, ramp) * v
        if not scaled.requires_grad:
            norms[k] = 0.0
            continue
        grads = torch.autograd.grad(scaled, params, retain_graph=True, allow_unused=True)
        norms[k] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None) or torch.tensor(0.0)))
    if norms["ce"] == 0.0:
        return {}
    return {k: n / norms["ce"] for k, n in norms.items() if k != "ce"}
