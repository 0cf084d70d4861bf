"""The MVD trainer: data, model, losses, schedule, checkpoints, validation, final test evaluation.

* AMP (fp16 autocast + GradScaler) on CUDA when ``optim.amp``; fp32 on the CPU.
* Linear warm-up from ``warmup_factor * lr``, then cosine or step decay, per epoch.
* ``last.pt`` written atomically (temp file + ``os.replace``) after every epoch with
  model, optimizer, scheduler, scaler, sampler and RNG state; ``resume=True`` continues
  after the last finished epoch, so a killed run loses at most one epoch.
* Resume is exact: a run killed after epoch ``e`` and resumed with the same settings ends with
  the parameters and loss history of the uninterrupted run, bit for bit (tests/test_resume_exact.py).
  Every random stream is either restored or a function of ``(seed, rank, epoch)`` alone:

  - the main process's torch (and CUDA), Python ``random`` and NumPy global states are saved in
    ``last.pt`` and restored (augmentation with ``data.workers=0``, dropout, validation);
  - the sampler's order is a pure function of ``(seed, epoch)`` (its state is saved too);
  - data-loader workers are started afresh every epoch (no persistent workers) and seeded from the
    loader's own generator, which is re-seeded from ``(seed, rank, epoch)`` before the epoch
    (:meth:`Trainer._seed_loader`): worker ``i`` of epoch ``e`` draws the same augmentations whether
    or not epoch ``e - 1`` ran in this process. Changing ``data.workers`` on resume changes which
    worker (stream) loads which image, so the run continues, but not draw for draw.
* A resumed run with another ``optim.epochs`` (``--resume --epochs N``: extend or shorten it)
  follows the schedule of the new total from the resume point: epoch ``e`` (0-based) trains at
  ``lr * lr_factor(e, N, ...)``, the rate an uninterrupted ``N``-epoch run has at that epoch (the
  epochs already run keep the rates they had); one log line says so. The cosine factor is above 0
  for every epoch before ``N``, so no epoch trains at learning rate 0 (the old schedule's last
  rate, which is 0, is not carried over). The VCD/VML ramp-in (``loss.ramp``) is likewise a
  fraction of the new total.
* ``best.pt``: chosen on the *validation* identities (never the test split): Rank-1 of IR
  queries against the RGB gallery, ties broken by mAP. Without a validation split the last
  epoch is kept and a warning says so.
* Crash safety, in this order per epoch: a new best goes to ``.best.pt.pending``, ``log.csv`` is
  rewritten (atomically) from the history, ``last.pt`` is written (the commit point: it
  records the epoch and which epoch is best), then the pending best is renamed over
  ``best.pt``. A resume after a kill at any of these points ends with a ``best.pt`` that is
  the epoch ``last.pt`` names and a ``log.csv`` with every epoch once: a pending best that
  ``last.pt`` already records is put in place, one it does not is dropped (its epoch runs
  again), the log is rewritten from ``last.pt``'s history, and temp files are removed.
* Under ``torchrun``: DistributedDataParallel, rank 0 writes and evaluates, and ``W`` processes with
  ``data.p_ids = P`` train like one with ``W * P`` (:mod:`mvd_edge.train.distributed`).
* Checkpoints hold only tensors and plain Python values and load with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mvd_edge.core.config import TrainConfig, to_dict
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.core.spec import ModelSpec
from mvd_edge.core.util import temp_beside
from mvd_edge.data.base import DatasetError, ReidDataset
from mvd_edge.data.registry import DataOptions, dataset_entry, default_eval_settings
from mvd_edge.eval.reid import evaluate_features, save_results
from mvd_edge.model.checkpoint import (  # noqa: F401  (the trainer writes this format)
    CKPT_FORMAT,
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    resolve_device,
    save_checkpoint,
)
from mvd_edge.model.net import MVDNet
from mvd_edge.train.dataset import ReidImageDataset, label_map, loader_iter
from mvd_edge.train.distributed import DistInfo, convert_sync_batchnorm, global_batch, init_distributed
from mvd_edge.train.extract import extract_features
from mvd_edge.train.losses import TERMS, loss_terms, ramp_factor, term_weight, trunk_gradient_fractions, weighted_total
from mvd_edge.train.sampler import CrossModalIdentitySampler

VAL_SETTING = "cross-i2v"


def lr_factor(epoch: int, epochs: int, warmup: int, warmup_factor: float, schedule: str,
              milestones: list[int], gamma: float) -> float:
    """Multiplier of the base learning rate for 0-based ``epoch``."""
    if warmup > 0 and epoch < warmup:
        return warmup_factor + (1.0 - warmup_factor) * epoch / warmup
    if schedule == "cosine":
        span = max(1, epochs - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / span))
    return gamma ** sum(epoch >= m for m in milestones)


def prepare_dataset(cfg: TrainConfig, distinfo: DistInfo) -> ReidDataset:
    """Load the configured data set; one written on first use (synthetic) is written by rank 0 first."""
    entry = dataset_entry(cfg.data.dataset)
    root = entry.root(cfg.data.root, cfg.out)
    if entry.write is not None:
        if distinfo.main:
            entry.write(root, cfg.synth, not cfg.data.root)
        distinfo.barrier()
    d = cfg.data
    return entry.read(root, DataOptions(d.trial, d.use_val, d.val_fraction, cfg.seed))


def _rng_state() -> dict:
    """This process's random states (torch, CUDA, Python, NumPy) as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "numpy" in state:  # absent from checkpoints written before it was saved
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Train MVD with explicit configuration (built from YAML/CLI at the edge)."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.resume = resume
        self.progress = progress
        if not resume and not overwrite:  # never replace another run's checkpoints or log silently
            # (a log.csv without checkpoints is a first epoch that never finished: nothing to keep)
            held = [n for n in ("last.pt", "best.pt") if (self.out / n).is_file()]
            if held:
                raise CheckpointError(f"{self.out} already holds a run ({', '.join(held)}): --resume to continue it, "
                                      f"--overwrite to replace it, or another --out")
        self.distinfo = init_distributed(cfg.device if cfg.device != "auto" else
                                         ("cuda" if torch.cuda.is_available() else "cpu"))
        self.device = resolve_device(cfg.device, self.distinfo.local_rank)
        if self.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(self.device))
        torch.manual_seed(cfg.seed + self.distinfo.rank)
        random.seed(cfg.seed + self.distinfo.rank)
        self.spec = PreprocessSpec(height=cfg.data.height, width=cfg.data.width)
        self.data = prepare_dataset(cfg, self.distinfo)
        if not self.data.train:
            raise DatasetError(f"the training split of {cfg.data.dataset} is empty")
        self.labels = label_map(self.data.train)
        self.model = self.build_model().to(self.device)
        if self.distinfo.enabled and cfg.dist.sync_bn:
            self.model = convert_sync_batchnorm(self.model, self.device)
        o = cfg.optim
        self.optimizer = torch.optim.Adam(self.trainable_parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(
            e, o.epochs, o.warmup_epochs, o.warmup_factor, o.schedule, o.milestones, o.gamma))
        self.use_amp = bool(o.amp and self.device.startswith("cuda"))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        train_ds = ReidImageDataset(self.data.train, self.spec, self.labels, augment=True,
                                    gray_prob=cfg.data.gray_prob, channel_prob=cfg.data.channel_prob)
        self.sampler = CrossModalIdentitySampler(
            [s.pid for s in self.data.train], [s.modality for s in self.data.train], cfg.data.p_ids,
            cfg.data.k_per_modality, seed=cfg.seed, batches_per_epoch=cfg.data.batches_per_epoch,
            rank=self.distinfo.rank, world_size=self.distinfo.world_size, split="identities")
        #: the loader's own stream (worker seeds), re-seeded before every epoch: see :meth:`_seed_loader`
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(train_ds, batch_size=self.sampler.batch_size, sampler=self.sampler,
                                 num_workers=cfg.data.workers, drop_last=True,
                                 persistent_workers=False,  # fresh workers, freshly seeded, every epoch
                                 generator=self.loader_generator,
                                 pin_memory=self.device.startswith("cuda"))
        self.net = self.distinfo.wrap(self.model, self.device)
        self.start_epoch = 0
        self.best = {"rank1": -1.0, "mAP": -1.0, "epoch": -1}
        self.history: list[dict] = []
        if resume:
            self._resume()

    # ------------------------------------------------------------------ what a subclass changes
    def build_model(self) -> MVDNet:
        """The network to train (the distiller builds a one-branch student instead)."""
        m = self.cfg.model
        return MVDNet(len(self.labels), m.backbone, m.last_stride, m.pretrained, m.bottleneck_dims,
                      recipe=self.cfg.eval.recipe)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def compute_loss(self, step: int, x: torch.Tensor, outputs: dict, labels: torch.Tensor, mods: torch.Tensor,
                     ramp: float) -> tuple[torch.Tensor, dict[str, float], dict[str, float] | None]:
        """-> (loss, per-term floats + ``total``, shared-trunk gradient fractions or None)."""
        if self.distinfo.enabled:  # the loss of the global batch (mvd_edge.train.distributed)
            outputs, labels, mods = global_batch(outputs, labels, mods)
        terms = loss_terms(outputs, labels, self.cfg.loss, mods)
        grad_fractions = None
        if step == 0 and self.cfg.loss.grad_log and not self.distinfo.enabled:
            shared = [p for p in self.model.branches["shared"].trunk.parameters() if p.requires_grad]
            grad_fractions = trunk_gradient_fractions(terms, self.cfg.loss, shared, ramp)
        return (*weighted_total(terms, {k: term_weight(self.cfg.loss, k, ramp) for k in terms}), grad_fractions)

    def extra_state(self) -> dict:
        """More checkpoint entries (the distiller: its projection head and teacher facts)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state` on ``--resume``."""

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int, rank_rngs: list[dict] | None = None) -> dict:
        """``last.pt``'s content; ``rank_rngs``: every rank's RNG state under DDP, in rank order."""
        return {
            "format": CKPT_FORMAT,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "model_spec": self.model.spec.to_dict(),
            "recipe": self.model.recipe,
            "preprocess": self.spec.to_dict(),
            "label_map": dict(self.labels),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": _rng_state(),
            "world_size": self.distinfo.world_size,
            **({"rng_ranks": rank_rngs} if rank_rngs is not None else {}),
            "best": dict(self.best),
            "history": list(self.history),
            "config": to_dict(self.cfg),
            "versions": {"torch": str(torch.__version__)},
            **self.extra_state(),
        }

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.is_file():
            raise CheckpointError(f"--resume: no checkpoint to resume from at {path}")
        state = load_checkpoint(path, map_location=self.device)
        if ModelSpec.from_dict(state["model_spec"]) != self.model.spec:
            raise CheckpointError(f"{path} was trained with a different model ({state['model_spec']}); "
                                  f"use the same config or another --out")
        for part in ("model", "optimizer", "scheduler", "scaler", "sampler"):
            getattr(self, part).load_state_dict(state[part])
        self._resume_rng(state, path)
        self.best = dict(state["best"])
        self.history = list(state["history"])
        self.load_extra_state(state)
        self.start_epoch = int(state["epoch"]) + 1
        self._set_lr(self.start_epoch)
        planned = state.get("config", {}).get("optim", {}).get("epochs")
        epochs = self.cfg.optim.epochs
        if self.distinfo.main and planned is not None and int(planned) != epochs and self.start_epoch < epochs:
            print(f"resuming at epoch {self.start_epoch + 1} with optim.epochs={epochs} (the run was planned for "
                  f"{planned}): the learning rate follows the {epochs}-epoch schedule from here, "
                  f"lr {self.optimizer.param_groups[0]['lr']:.2e} in epoch {self.start_epoch + 1}", flush=True)
        if self.distinfo.main:  # one process tidies the folder (others would race it)
            self._recover(int(state["epoch"]))

    def _set_lr(self, epoch: int) -> None:
        """Put the learning rate of 0-based ``epoch`` under this run's schedule (``optim.epochs`` as
        configured now) into the optimizer, as the scheduler's step would: on resume the optimizer's
        saved rate is the one the checkpoint's schedule chose, which differs when the epoch count did."""
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(epoch)

    def _seed_loader(self, epoch: int) -> None:
        """Seed the data loading of 0-based ``epoch`` from ``(seed, rank, epoch)`` alone: the loader's
        generator draws the epoch's worker base seed (worker ``i`` seeds torch, ``random`` and NumPy from
        it, as torch's DataLoader does), so the workers' augmentation streams do not depend on which
        epochs ran before in this process. With ``data.workers=0`` loading draws from the main
        process's stream, which ``last.pt`` saves."""
        entropy = np.random.SeedSequence([self.cfg.seed % 2**64, self.distinfo.rank, int(epoch)])
        self.loader_generator.manual_seed(int(entropy.generate_state(1, np.uint64)[0]))

    def _resume_rng(self, state: dict, path: Path) -> None:
        """Each rank continues its own random stream (augmentation, dropout) where ``last.pt`` saved it."""
        world, rank = self.distinfo.world_size, self.distinfo.rank
        was = state.get("world_size")  # None: a checkpoint from before it was recorded
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == world:
            _set_rng_state(ranks[rank])
        elif world == 1 or rank == 0:
            _set_rng_state(state["rng"])
        else:  # no saved stream for this rank: a fresh one, distinct per rank and epoch
            fresh = self.cfg.seed + rank + 1_000_003 * (int(state["epoch"]) + 1)
            torch.manual_seed(fresh)
            random.seed(fresh)
        if not self.distinfo.main:
            return
        if was is not None and int(was) != world:
            warnings.warn(f"{path} was written by a run on {was} process(es), resumed on {world}: a step now has "
                          f"{world} x data.p_ids identities instead of {was} x, and ranks other than 0 draw "
                          f"(augmentation, dropout) from fresh random streams; the run continues, but not as the "
                          f"uninterrupted one would", stacklevel=3)
        elif world > 1 and ranks is None:
            warnings.warn(f"{path} holds no per-rank random state (an older checkpoint): ranks other than 0 draw "
                          f"from fresh random streams", stacklevel=3)

    def _recover(self, last_epoch: int) -> None:
        """Finish or undo the epoch a kill interrupted (see the module docstring)."""
        pending = self.out / PENDING_BEST
        if pending.is_file():
            try:
                epoch = int(load_checkpoint(pending)["epoch"])
            except CheckpointError:  # killed while writing it
                epoch = None
            if epoch is not None and epoch <= last_epoch and self.best.get("epoch") == epoch + 1:
                _promote_best(self.out)  # committed by last.pt, not yet renamed
            else:
                pending.unlink()  # not committed: that epoch runs again
        for tmp in self.out.glob(".*.tmp-*"):  # half-written files of a killed writer
            tmp.unlink()
        _write_log(self.out / "log.csv", self.history)

    def ramp(self, progress: float) -> float:
        """VCD/VML ramp-in factor at ``progress`` epochs (1 when ``loss.ramp`` is 0)."""
        if not self.cfg.loss.ramp:
            return 1.0
        return ramp_factor(progress, self.cfg.optim.warmup_epochs, self.cfg.loss.ramp * self.cfg.optim.epochs)

    # ------------------------------------------------------------------ loop
    def train_epoch(self, epoch: int) -> dict:
        self.net.train()
        self.sampler.set_epoch(epoch)
        self._seed_loader(epoch)
        sums: dict[str, float] = {}
        n = replaced = 0
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        from tqdm import tqdm

        bar = tqdm(loader_iter(self.loader), total=len(self.loader), desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}",
                   unit="batch", leave=False, disable=not (self.progress and self.distinfo.main))
        n_batches = max(1, len(self.loader))
        grad_fractions: dict[str, float] = {}
        ramps: list[float] = []
        for i, (x, labels, mods, _cams, rep) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            ramp = self.ramp(epoch + i / n_batches)
            ramps.append(ramp)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
                outputs = self.net(x)
            loss, terms, fractions = self.compute_loss(i, x, outputs, labels, mods, ramp)
            if fractions is not None:
                grad_fractions = fractions
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}; lower optim.lr")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.optim.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            replaced += int(rep.sum())
            bar.set_postfix(loss=f"{terms['total']:.3f}")
        self.scheduler.step()
        elapsed = time.perf_counter() - t0
        row = {f"loss_{k}": v / max(n, 1) for k, v in sums.items()}
        row["ramp"] = sum(ramps) / max(len(ramps), 1)
        if self.cfg.loss.grad_log and not self.distinfo.enabled:
            # same keys every epoch (log.csv): every weighted term's shared-trunk gradient / CE's
            for k in TERMS[1:]:
                if getattr(self.cfg.loss, k):
                    row[f"grad_{k}"] = grad_fractions.get(k, float("nan"))
        row.update({"epoch": epoch + 1, "lr": lr, "seconds": elapsed,
                    "images_per_s": n * self.sampler.batch_size * self.distinfo.world_size / max(elapsed, 1e-9),
                    "replaced_images": replaced})
        if replaced:
            warnings.warn(f"epoch {epoch + 1}: {replaced} unreadable images were replaced by others of the same "
                          f"identity", stacklevel=2)
        return row

    def validate(self) -> dict | None:
        """Rank-1/mAP/mINP of IR queries vs RGB gallery on the validation identities (percent)."""
        if not self.data.val:
            return None
        feats = extract_features(self.model, self.data.val, self.spec, self.cfg.eval.recipe,
                                 self.cfg.eval.batch_size, self.device)
        res = evaluate_features(feats, self.data.val, [VAL_SETTING], n_trials=1, seed=self.cfg.seed)[VAL_SETTING]
        return {"val_rank1": res["rank1"]["mean"], "val_mAP": res["mAP"]["mean"], "val_mINP": res["mINP"]["mean"]}

    def fit(self) -> dict:
        """Train to ``optim.epochs``; returns a summary with the best checkpoint path."""
        cfg = self.cfg
        main = self.distinfo.main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        if main and not self.data.val:
            warnings.warn("no validation split: best.pt will be the last epoch (the test split is never used "
                          "for model selection)", stacklevel=2)
        tb = _tensorboard(self.out) if main else None
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            row = self.train_epoch(epoch)
            if main:
                is_last = epoch + 1 == cfg.optim.epochs
                val = self.validate() if ((epoch + 1) % cfg.eval.eval_every == 0 or is_last) else None
                row.update(val or {"val_rank1": None, "val_mAP": None, "val_mINP": None})
                self.history.append(row)
                improved = (not self.data.val if val is None
                            else (val["val_rank1"], val["val_mAP"]) > (self.best["rank1"], self.best["mAP"]))
                if improved:
                    self.best = {"rank1": val["val_rank1"] if val else -1.0, "mAP": val["val_mAP"] if val else -1.0,
                                 "epoch": epoch + 1}
            rank_rngs = self.distinfo.all_gather_object(_rng_state())  # all ranks, after rank 0's validation (which draws too)
            if main:
                state = self._state(epoch, rank_rngs)
                if improved:  # crash-safe order: see the module docstring
                    save_checkpoint(state, self.out / PENDING_BEST)
                _write_log(self.out / "log.csv", self.history)
                save_checkpoint(state, self.out / "last.pt")
                if improved:
                    _promote_best(self.out)
                if tb is not None:
                    for k, v in row.items():
                        if v is not None:
                            tb.add_scalar(k, v, epoch + 1)
                msg = (f"epoch {epoch + 1}/{cfg.optim.epochs} loss {row.get('loss_total', float('nan')):.3f} "
                       f"lr {row['lr']:.2e} {row['images_per_s']:.0f} img/s")
                if val:
                    msg += f" | val R1 {val['val_rank1']:.1f} mAP {val['val_mAP']:.1f}"
                print(msg, flush=True)
            self.distinfo.barrier()
        if tb is not None:
            tb.close()
        return {"out": str(self.out), "best": dict(self.best), "history": self.history,
                "best_checkpoint": str(self.out / "best.pt")}

    def test(self, checkpoint: Path | None = None, settings: list[str] | None = None) -> dict:
        """Evaluate a checkpoint (default best.pt) on the test split with the data set's protocols."""
        path = checkpoint or self.out / "best.pt"
        model, _ = model_from_checkpoint(path, recipe=self.cfg.eval.recipe, map_location=self.device)
        return self.test_model(model.to(self.device), settings)

    def test_model(self, model: torch.nn.Module, settings: list[str] | None = None) -> dict:
        """Score ``model`` (already on the device) on the test split with the data set's protocols."""
        settings = settings or self.cfg.eval.settings or default_eval_settings(self.cfg.data.dataset)
        feats = extract_features(model, self.data.test, self.spec, self.cfg.eval.recipe, self.cfg.eval.batch_size,
                                 self.device, progress=self.progress)
        return evaluate_features(feats, self.data.test, settings, n_trials=self.cfg.eval.trials, seed=self.cfg.seed)


PENDING_BEST = ".best.pt.pending"


def _promote_best(out: Path) -> None:
    """The pending best becomes ``best.pt`` (one rename: atomic)."""
    os.replace(out / PENDING_BEST, out / "best.pt")


def _write_log(path: Path, rows: list[dict]) -> None:
    """Write every epoch row (all rows have the same keys: see ``Trainer.fit``) atomically."""
    if not rows:
        return
    with temp_beside(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: CSV only
        return None
    return SummaryWriter(str(out / "tb"))


def run_training(cfg: TrainConfig, resume: bool = False, progress: bool = True, evaluate_test: bool = True,
                 overwrite: bool = False) -> dict:
    """Train, then (rank 0) evaluate best.pt on the test protocols and save results/PNG.

    Into a folder that already holds a run only with ``resume`` (continue it) or ``overwrite``."""
    trainer = Trainer(cfg, resume=resume, progress=progress, overwrite=overwrite)
    return _finish_run(trainer, cfg, evaluate_test, title=f"{cfg.data.dataset} ({cfg.model.backbone}, "
                                                          f"{cfg.eval.recipe})")


def _finish_run(trainer: Trainer, cfg: TrainConfig, evaluate_test: bool, title: str) -> dict:
    """Fit, then (rank 0) evaluate best.pt on the test protocols and save results/PNG."""
    summary = trainer.fit()
    if trainer.distinfo.main and evaluate_test and trainer.data.test:
        results = trainer.test()
        save_results(results, Path(cfg.out) / "test_results.json", Path(cfg.out) / "cmc.png", title=title)
        summary["test"] = results
    trainer.distinfo.close()
    return summary
