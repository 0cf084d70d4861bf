"""``mvd-edge distill``: a one-pass student trained from a trained MVD checkpoint (the teacher).

The paper's test feature (recipe ``full``) costs four backbone passes per crop. The student is
an :class:`~mvd_edge.model.net.MVDNet` with the shared branch only (``STUDENT_BRANCHES``): one
backbone on the crop as it comes, whatever its modality, its BN-neck observation ``v`` as the
embedding (recipe ``shared``), its information bottleneck ``z`` too (recipe ``z``).

Loss per batch (the teacher runs in eval mode under ``torch.no_grad``: its BatchNorm statistics
and weights never change, and its features carry no gradient):

* identity terms of MVD on the student's one observation: cross-entropy on ``v`` and ``z``
  (label smoothing), batch-hard triplet on the pooled feature, VSD (``loss.*`` weights);
* ``kd_cos`` (``distill.cos``): ``1 - cos(P v, t)``, ``t`` the teacher's L2-normalised ``full``
  feature (4 x F dims), ``P`` a training-only linear projection (kept in the checkpoint for
  ``--resume``, not part of the exported network);
* ``kd_rel`` (``distill.rel``): relational distillation, the mean squared difference between
  the batch's cosine-similarity matrix of the student's normalised ``v`` and that of ``t``
  (diagonal excluded). This one shapes the very geometry the matcher and the re-id
  protocols use (cosines between people, across modalities: the sampler puts both
  modalities of every identity in a batch).

The student starts from the teacher's shared branch when the backbones match
(``distill.init=auto``/``teacher``), from scratch (or ``model.pretrained``) otherwise. The
checkpoint is chosen on the validation identities like the teacher's (Rank-1 of the
``shared`` recipe), and every checkpoint records ``student_of``: what it was distilled from.
Export copies that into the graph metadata, engines into their sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mvd_edge.core.config import (
    ConfigError,
    TrainConfig,
    _merge,
    apply_overrides,
    from_dict,
    read_yaml_mapping,
    to_dict,
    validate_train_config,
)
from mvd_edge.core.errors import UsageError
from mvd_edge.core.spec import STUDENT_BRANCHES
from mvd_edge.data.registry import dataset_entry
from mvd_edge.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from mvd_edge.model.net import MVDNet
from mvd_edge.runtime.sidecar import sha256_file
from mvd_edge.train.distributed import gather_rows, global_batch
from mvd_edge.train.losses import loss_terms, term_weight, weighted_total
from mvd_edge.train.trainer import Trainer, _finish_run

#: MVD terms that need two branches: a one-branch student cannot have them
TWO_BRANCH_TERMS = ("dml", "vcd", "vml")


def distill_config(teacher: str | Path, config: str | Path | None = None, overrides: list[str] | None = None
                   ) -> TrainConfig:
    """The student's training config: the teacher's own (its data, sizes, seed, schedule), then
    the student's fixed settings, then ``config`` (YAML) and ``overrides`` (``key=value``).

    Fixed: ``eval.recipe=shared``, ``distill.teacher``, the two-branch MVD terms off
    (``loss.dml/vcd/vml=0``; setting one again is an error), no per-term gradient log. A
    synthetic teacher without ``data.root`` trained on ``<its out>/synthetic``: the student
    reads the same folder. ``model.pretrained`` is kept only for the teacher's backbone.
    """
    tpath = Path(teacher)
    tcfg = load_checkpoint(tpath).get("config")  # the config only: the Distiller builds the network
    data: dict = to_dict(TrainConfig())
    if isinstance(tcfg, dict):
        _merge_known(data, tcfg)
    t_backbone = data["model"]["backbone"]
    if not data["data"]["root"]:  # a set the teacher wrote into its own out folder (synthetic)
        data["data"]["root"] = str(dataset_entry(data["data"]["dataset"]).root(None, data["out"]))
    data["out"] = "runs/student"
    data["eval"]["recipe"] = "shared"
    data["distill"]["teacher"] = str(tpath)
    for k in TWO_BRANCH_TERMS:
        data["loss"][k] = 0.0
    data["loss"]["grad_log"] = False
    if config is not None:
        _merge(data, read_yaml_mapping(config), "")
    apply_overrides(data, overrides or [])
    if data["model"]["backbone"] != t_backbone and data["model"]["pretrained"] == (tcfg or {}).get("model", {}).get(
            "pretrained"):
        data["model"]["pretrained"] = None  # the teacher's ImageNet file is for the teacher's backbone
    cfg = from_dict(TrainConfig, data)
    validate_train_config(cfg)
    check_student_config(cfg)
    return cfg


def check_student_config(cfg: TrainConfig) -> None:
    """What a one-branch student cannot train with: the two-branch MVD terms, the ``full`` recipe."""
    bad = [k for k in TWO_BRANCH_TERMS if getattr(cfg.loss, k)]
    if bad:
        raise ConfigError(f"loss.{bad[0]} needs two branches; a one-pass student has one (leave "
                          f"{', '.join('loss.' + k for k in TWO_BRANCH_TERMS)} at 0)")
    if cfg.eval.recipe == "full":
        raise ConfigError("eval.recipe: a one-pass student has the shared and z recipes, not full")


def _merge_known(base: dict, new: dict) -> None:
    """Merge a stored config into the defaults, skipping keys this version does not have."""
    for key, value in new.items():
        if key not in base:
            continue
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge_known(base[key], value)
        else:
            base[key] = value


class Distiller(Trainer):
    """:class:`~mvd_edge.train.trainer.Trainer` with a one-branch student, a frozen teacher and
    the distillation terms (see the module docstring); checkpoints, resume, validation, DDP and
    crash safety are the trainer's."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False,
                 teacher: str | Path | None = None):
        """``teacher``: the teacher the user named, checked on ``resume`` against the one the run was
        distilled from (a ``--resume`` config is the run's own, whose ``distill.teacher`` is the run's
        teacher, so the one on the command line must be passed here to be checked at all)."""
        if not cfg.distill.teacher:
            raise ConfigError("distill.teacher: give the teacher's checkpoint (mvd-edge distill TEACHER)")
        check_student_config(cfg)
        self.given_teacher = Path(teacher) if teacher is not None else None
        self.teacher_path = Path(cfg.distill.teacher)
        teacher, tstate = model_from_checkpoint(self.teacher_path)
        if teacher.is_student:
            raise UsageError(f"{self.teacher_path} is itself a one-pass student; distill from an MVD checkpoint "
                             "(three branches, recipe full)")
        teacher.recipe = "full"
        self.teacher = teacher.requires_grad_(False).eval()
        self.teacher_dim = teacher.embedding_dim("full")
        self.student_of = {
            "teacher_checkpoint": str(self.teacher_path),
            "teacher_sha256": sha256_file(self.teacher_path),
            "teacher_backbone": teacher.spec.backbone,
            "teacher_recipe": "full",
            "teacher_embedding_dim": self.teacher_dim,
            "teacher_epoch": int(tstate.get("epoch", -1)) + 1,
            "teacher_val_rank1": (tstate.get("best") or {}).get("rank1"),
            "losses": {"cos": cfg.distill.cos, "rel": cfg.distill.rel, "ce": cfg.loss.ce, "metric": cfg.loss.metric,
                       "vsd": cfg.loss.vsd},
        }
        super().__init__(cfg, resume=resume, progress=progress, overwrite=overwrite)
        self.proj = self.distinfo.wrap(self.kd_proj, self.device)  # gradients all-reduced like the student's

    def build_model(self) -> MVDNet:
        m, d = self.cfg.model, self.cfg.distill
        t = self.teacher.spec
        same = m.backbone == t.backbone and m.last_stride == t.last_stride
        if d.init == "teacher" and not same:
            raise ConfigError(f"distill.init=teacher needs the teacher's backbone ({t.backbone}, last stride "
                              f"{t.last_stride}); this student is {m.backbone}: use distill.init=scratch or auto")
        init = "teacher" if d.init == "teacher" or (d.init == "auto" and same) else "scratch"
        pretrained = m.pretrained if init == "scratch" else None
        student = MVDNet(len(self.labels), m.backbone, m.last_stride, pretrained, m.bottleneck_dims,
                         recipe=self.cfg.eval.recipe, branches=STUDENT_BRANCHES)
        copied = 0
        if init == "teacher":
            own = student.state_dict()
            take = {k: v for k, v in self.teacher.state_dict().items()
                    if k.startswith("branches.shared.") and k in own and own[k].shape == v.shape}
            student.load_state_dict(take, strict=False)
            copied = len(take)
        self.student_of["init"] = init
        self.student_of["init_tensors_copied"] = copied
        self.teacher.to(self.device)
        self.kd_proj = nn.Linear(student.feat_dim, self.teacher_dim, bias=False).to(self.device)
        return student

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.kd_proj.parameters())

    def teacher_targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's L2-normalised ``full`` feature ``[N, 4F]`` of a batch (eval mode, no gradient)."""
        self.teacher.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            return self.teacher.embed(x, "full").float()

    def compute_loss(self, step, x, outputs, labels, mods, ramp):
        d = self.cfg.distill
        t = self.teacher_targets(x)
        if self.distinfo.enabled:  # the loss of the global batch, teacher targets included (mvd_edge.train.distributed)
            outputs, labels, mods = global_batch(outputs, labels, mods)
            t = gather_rows([t])[0]
        terms = loss_terms(outputs, labels, self.cfg.loss, mods)
        weights = {k: term_weight(self.cfg.loss, k, ramp) for k in terms}
        v = outputs["shared_x"]["v"].float()
        if d.cos:
            terms["kd_cos"] = kd_cosine(self.proj(v), t)
            weights["kd_cos"] = d.cos
        if d.rel:
            terms["kd_rel"] = kd_relational(v, t)
            weights["kd_rel"] = d.rel
        return (*weighted_total(terms, weights), None)

    def extra_state(self) -> dict:
        return {"student_of": dict(self.student_of), "distill_state": {"kd_proj": self.kd_proj.state_dict()}}

    def load_extra_state(self, state: dict) -> None:
        rec = state.get("student_of") if isinstance(state.get("student_of"), dict) else {}
        was = rec.get("teacher_sha256")
        given = self.given_teacher
        given_sha = sha256_file(given) if given is not None and was is not None and given.is_file() else was
        if given_sha != was:  # the teacher on the command line is not the run's (a --resume config holds the run's)
            old = rec.get("teacher_checkpoint", "the run's teacher")
            raise CheckpointError(f"--resume: {self.out / 'last.pt'} was distilled from another teacher: {old} "
                                  f"(sha256 {str(was)[:12]}...), not {given} (sha256 {given_sha[:12]}...); resume "
                                  f"with {old}, or distill from {given} into another --out")
        if was != self.student_of["teacher_sha256"]:
            raise CheckpointError(f"{self.out / 'last.pt'} was distilled from another teacher "
                                  f"(sha256 {str(was)[:12]}..., now {self.student_of['teacher_sha256'][:12]}...); "
                                  "resume with the same teacher or use another --out")
        self.kd_proj.load_state_dict(state["distill_state"]["kd_proj"])
        self.student_of = dict(state["student_of"])


def kd_cosine(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between rows of ``projected [N, D]`` and ``target [N, D]``."""
    return (1.0 - F.cosine_similarity(projected, target, dim=1)).mean()


def kd_relational(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the off-diagonal cosine similarities within the batch:
    ``student [N, Ds]`` and ``target [N, Dt]`` (any scale; both are L2-normalised here)."""
    s = F.normalize(student, dim=1)
    t = F.normalize(target, dim=1)
    n = s.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return ((s @ s.T - t @ t.T)[off] ** 2).mean()


def run_distill(cfg: TrainConfig, resume: bool = False, progress: bool = True, evaluate_test: bool = True,
                overwrite: bool = False, teacher: str | Path | None = None) -> dict:
    """Distil, then (rank 0) evaluate the student's ``best.pt`` on the test protocols; writes
    ``student.json`` (the ``student_of`` record) beside the checkpoints. ``teacher``: see :class:`Distiller`."""
    trainer = Distiller(cfg, resume=resume, progress=progress, overwrite=overwrite, teacher=teacher)
    summary = _finish_run(trainer, cfg, evaluate_test, title=f"{cfg.data.dataset} (student {cfg.model.backbone}, "
                                                             f"{cfg.eval.recipe})")
    summary["student_of"] = dict(trainer.student_of)
    if trainer.distinfo.main:
        (Path(cfg.out) / "student.json").write_text(json.dumps(trainer.student_of, indent=2))
    return summary
