"""MVD losses, with the paper's formulas done right (PAPER.md).

Notation: ``p(y|v)`` and ``p(y|z)`` are the softmax predictions of the identity
classifiers on an observation ``v`` and on its bottleneck representation ``z``.

* VSD (per observation):           KL( sg[p(y|v)] || p(y|z) )
* VCD (across the two views 1, 2): KL( sg[p(y|v2)] || p(y|z1) ) + KL( sg[p(y|v1)] || p(y|z2) )
* VML (across the two views):      JSD( p(y|z1) || p(y|z2) )   (symmetric, both sides learn)
* DML (the modality-specific branches' v predictions): KL(sg[p_a] || p_b) + KL(sg[p_b] || p_a)

``sg`` is stop-gradient: the teacher side receives no gradient. ``torch.nn.functional.
kl_div(input, target)`` computes KL(target || input) and expects ``input`` as log-
probabilities; the authors' release passed probabilities there, which we do not.

View pairs (``VIEW_PAIRS``): the two modality-specific observations (``rgb`` on x, ``ir`` on
the grayscale view g) and the shared branch's two views (``shared_x``, ``shared_g``). VSD
applies to all four observations.

Total: L = ce*CE + metric*Metric + dml*DML + vsd*VSD + vcd*VCD + vml*VML, each term
averaged over the observations/pairs it applies to so the weights do not depend on how
many there are. Defaults (``LossWeights``): ce 1, metric 1, dml 1, vsd 2, vcd 2, vml 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

VIEW_PAIRS: tuple[tuple[str, str], ...] = (("rgb", "ir"), ("shared_x", "shared_g"))
DML_PAIR: tuple[str, str] = ("rgb", "ir")


def kl_teacher_student(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL( sg[softmax(teacher)] || softmax(student) ), mean over the batch. ``[N, C]`` -> scalar."""
    target = F.softmax(teacher_logits.detach().float(), dim=1)
    return F.kl_div(F.log_softmax(student_logits.float(), dim=1), target, reduction="batchmean")


def vsd_loss(logits_v: torch.Tensor, logits_z: torch.Tensor) -> torch.Tensor:
    """Variational self-distillation: KL( sg[p(y|v)] || p(y|z) )."""
    return kl_teacher_student(logits_v, logits_z)


def vcd_loss(logits_v1: torch.Tensor, logits_z1: torch.Tensor, logits_v2: torch.Tensor,
             logits_z2: torch.Tensor) -> torch.Tensor:
    """Variational cross-distillation: KL( sg[p(y|v2)] || p(y|z1) ) + KL( sg[p(y|v1)] || p(y|z2) )."""
    return kl_teacher_student(logits_v2, logits_z1) + kl_teacher_student(logits_v1, logits_z2)


def vml_loss(logits_z1: torch.Tensor, logits_z2: torch.Tensor) -> torch.Tensor:
    """Variational mutual learning: Jensen-Shannon divergence JSD( p(y|z1) || p(y|z2) ), batch mean."""
    logp1 = F.log_softmax(logits_z1.float(), dim=1)
    logp2 = F.log_softmax(logits_z2.float(), dim=1)
    # log m = log((p1 + p2) / 2), computed stably
    logm = torch.logsumexp(torch.stack([logp1, logp2]), dim=0) - torch.log(torch.tensor(2.0, device=logp1.device))
    kl1 = (logp1.exp() * (logp1 - logm)).sum(dim=1)
    kl2 = (logp2.exp() * (logp2 - logm)).sum(dim=1)
    return (0.5 * (kl1 + kl2)).mean()


def dml_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Deep mutual learning between two branches: KL(sg[p_a] || p_b) + KL(sg[p_b] || p_a)."""
    return kl_teacher_student(logits_a, logits_b) + kl_teacher_student(logits_b, logits_a)


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


@dataclass(frozen=True)
class LossWeights:
    ce: float = 1.0
    metric: float = 1.0
    dml: float = 1.0
    vsd: float = 2.0
    vcd: float = 2.0
    vml: float = 2.0
    label_smoothing: float = 0.1
    metric_kind: str = "triplet"  # triplet | rll
    margin: float = 0.3


def mvd_loss(outputs: dict[str, dict[str, torch.Tensor]], labels: torch.Tensor,
             w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total MVD loss from ``MVDNet`` training outputs; returns (loss, per-term floats).

    ``outputs[obs]`` has ``f [N,F]``, ``logits_v [N,C]``, ``logits_z [N,C]``; ``labels [N]``
    are identity labels 0..C-1. Terms with weight 0 are not computed.
    """
    names = list(outputs)
    terms: dict[str, torch.Tensor] = {}
    if w.ce:
        terms["ce"] = torch.stack([
            F.cross_entropy(outputs[n][k].float(), labels, label_smoothing=w.label_smoothing)
            for n in names for k in ("logits_v", "logits_z")
        ]).mean()
    if w.metric:
        if w.metric_kind == "triplet":
            fn = lambda f: batch_hard_triplet(f, labels, w.margin)  # noqa: E731
        elif w.metric_kind == "rll":
            fn = lambda f: ranked_list_loss(f, labels)  # noqa: E731
        else:
            raise ValueError(f"unknown metric loss {w.metric_kind!r}; use 'triplet' or 'rll'")
        terms["metric"] = torch.stack([fn(outputs[n]["f"]) for n in names]).mean()
    if w.dml:
        a, b = DML_PAIR
        terms["dml"] = dml_loss(outputs[a]["logits_v"], outputs[b]["logits_v"])
    if w.vsd:
        terms["vsd"] = torch.stack([vsd_loss(outputs[n]["logits_v"], outputs[n]["logits_z"]) for n in names]).mean()
    if w.vcd:
        terms["vcd"] = torch.stack([
            vcd_loss(outputs[a]["logits_v"], outputs[a]["logits_z"], outputs[b]["logits_v"], outputs[b]["logits_z"])
            for a, b in VIEW_PAIRS
        ]).mean()
    if w.vml:
        terms["vml"] = torch.stack([vml_loss(outputs[a]["logits_z"], outputs[b]["logits_z"]) for a, b in VIEW_PAIRS]).mean()
    weights = {"ce": w.ce, "metric": w.metric, "dml": w.dml, "vsd": w.vsd, "vcd": w.vcd, "vml": w.vml}
    total = sum(weights[k] * v for k, v in terms.items())
    logged = {k: float(v.detach()) for k, v in terms.items()}
    logged["total"] = float(total.detach())
    return total, logged
