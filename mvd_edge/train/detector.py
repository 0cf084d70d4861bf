"""A small person detector for fixed cameras, trained on MOT-format boxes and exported to ONNX.

``mvd-edge train-detector`` trains it on a user's frames with boxes (a video and its MOT
file per camera, or ``synth-video`` folders, which carry both) and writes an ONNX model that
``mvd-edge match --set detector.name=det.onnx`` runs through :class:`mvd_edge.match.detect.OnnxDetector`,
in any of the three output layouts that class reads (``v8``, ``v5``, ``e2e``).

Network (:class:`PersonNet`, 0.37 M parameters at the default width 32): a plain conv-BN-ReLU backbone to stride 8
and stride 16, the stride-16 map upsampled and added back (so a stride-8 cell sees a whole
person), and one 1x1 head per stride-8 cell: a person logit and the box (centre offset in
cells, log width and log height in cells). Input: ``[1, 3, H, W]`` RGB in 0..1, letterboxed
with grey 114 as ``OnnxDetector`` feeds it.

Training targets (centre sampling): a cell is positive for a box when its centre lies within
the middle ``radius`` of the box (at least the cell holding the box centre); a cell inside a box
of a person less than ``min_visibility`` visible is ignored. Loss: sigmoid focal loss on the
logits (normalised by the positives) + L1 on the box terms of positive cells. Augmentation:
horizontal flip, brightness/contrast jitter, scale jitter. The last ``val_fraction`` of each
video's frames are held out; the checkpoint kept is the one with the best box F1 on them.

Decoded outputs (all in input pixels): ``v8`` ``[1, 5, N]`` (cx, cy, w, h, person score);
``v5`` ``[1, N, 7]`` (cx, cy, w, h, objectness = score, then class scores 1 for person and 0
for a second, unused class: 7 columns, so ``detector.layout=auto`` tells it from an e2e
output); ``e2e`` ``[1, K, 6]`` (x1, y1, x2, y2, score, class 0) with the suppression inside
the graph: a cell is kept only where its score is the maximum of its 3x3 neighbourhood (the
centre-point suppression of CenterNet), then the top ``K`` scores. That keeps a few
duplicates on tall people, so :class:`~mvd_edge.match.detect.OnnxDetector` runs its NMS on
e2e outputs too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mvd_edge.core.errors import UsageError
from mvd_edge.core.util import temp_beside
from mvd_edge.match.detect import clip_boxes, iter_mot, letterbox, nms

__all__ = ["DetectorTrainConfig", "PersonNet", "decode", "export_detector", "load_detector", "load_frames", "targets",
           "train_detector", "write_report"]

STRIDE = 8
LAYOUTS = ("v8", "v5", "e2e")


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PersonNet(nn.Module):
    """Single-class, single-scale (stride 8) anchor-free detector; ``forward`` -> raw ``[B, 5, H/8, W/8]``
    (logit, dx, dy, log w, log h)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = int(width)
        self.stem = nn.Sequential(_cbr(3, w // 2, 2), _cbr(w // 2, w, 2), _cbr(w, w))
        self.s8 = nn.Sequential(_cbr(w, 2 * w, 2), _cbr(2 * w, 2 * w), _cbr(2 * w, 2 * w))
        self.s16 = nn.Sequential(_cbr(2 * w, 3 * w, 2), _cbr(3 * w, 3 * w), _cbr(3 * w, 3 * w))
        self.lateral = nn.Conv2d(3 * w, 2 * w, 1)
        self.neck = _cbr(2 * w, 2 * w)
        self.head = nn.Conv2d(2 * w, 5, 1)
        nn.init.constant_(self.head.bias, 0.0)
        with torch.no_grad():
            self.head.bias[0] = -4.0  # prior: few cells hold a person
            self.head.bias[3:] = 1.5  # e^1.5 cells ~ 36 px: a person-sized start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8 = self.s8(self.stem(x))
        f16 = self.s16(f8)
        f = f8 + F.interpolate(self.lateral(f16), size=f8.shape[-2:], mode="nearest")
        return self.head(self.neck(f))


def decode(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head ``[B, 5, h, w]`` -> (boxes ``[B, N, 4]`` cx, cy, w, h in input pixels, scores ``[B, N]``)."""
    b, _, h, w = raw.shape
    ys = (torch.arange(h, dtype=raw.dtype, device=raw.device) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, dtype=raw.dtype, device=raw.device) + 0.5).view(1, 1, w)
    cx = (xs + raw[:, 1]) * STRIDE
    cy = (ys + raw[:, 2]) * STRIDE
    bw = torch.exp(raw[:, 3].clamp(max=6.0)) * STRIDE
    bh = torch.exp(raw[:, 4].clamp(max=6.0)) * STRIDE
    boxes = torch.stack([cx, cy, bw, bh], dim=-1).reshape(b, h * w, 4)
    return boxes, torch.sigmoid(raw[:, 0]).reshape(b, h * w)


class _Export(nn.Module):
    def __init__(self, net: PersonNet, layout: str, top_k: int):
        super().__init__()
        self.net, self.layout, self.top_k = net, layout, int(top_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.net(x)
        boxes, scores = decode(raw)
        if self.layout == "e2e":  # keep the 3x3 local maxima of the score map (others score 0), then the top K
            peak = F.max_pool2d(raw[:, :1], 3, 1, 1) == raw[:, :1]  # on logits: sigmoid keeps the order
            scores = scores * peak.reshape(scores.shape).to(scores.dtype)
        if self.layout == "v8":
            return torch.cat([boxes, scores[..., None]], dim=-1).transpose(1, 2)
        if self.layout == "v5":
            one = torch.ones_like(scores)[..., None]
            return torch.cat([boxes, scores[..., None], one, torch.zeros_like(one)], dim=-1)
        k = min(self.top_k, scores.shape[1])
        top, idx = torch.topk(scores, k, dim=1)
        sel = torch.gather(boxes, 1, idx[..., None].expand(-1, -1, 4))
        xyxy = torch.cat([sel[..., :2] - sel[..., 2:] / 2, sel[..., :2] + sel[..., 2:] / 2], dim=-1)
        return torch.cat([xyxy, top[..., None], torch.zeros_like(top)[..., None]], dim=-1)


def export_detector(net: PersonNet, out: str | Path, size: tuple[int, int], layout: str = "v8",
                    top_k: int = 100, opset: int = 17) -> Path:
    """Write ``net`` as an ONNX detector in ``layout`` with a fixed ``[1, 3, H, W]`` input."""
    if layout not in LAYOUTS:
        raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = _Export(net.eval(), layout, top_k).eval()
    dummy = torch.zeros(1, 3, int(size[0]), int(size[1]))
    with temp_beside(out) as tmp, torch.no_grad():  # a failed export leaves no temp file and names ``out``
        torch.onnx.export(module, (dummy,), str(tmp), dynamo=False, opset_version=opset, input_names=["images"],
                          output_names=["output0"])
    return out


# ---------------------------------------------------------------------------------------- data
def load_frames(video: str | Path, mot: str | Path, size: tuple[int, int], every: int = 1,
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(letterboxed RGB frame, boxes [N, 5] x1, y1, x2, y2, visibility)]`` for every ``every``-th frame.

    ``mot``: MOT-challenge lines ``frame,id,x,y,w,h[,score,class,visibility]`` (1-based frames);
    rows with score 0 (MOT's "ignore") are kept as don't-care (visibility 0)."""
    video, mot = Path(video), Path(mot)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    rows: dict[int, list[list[float]]] = {}
    for r in iter_mot(mot):  # no visibility given (absent, or -1 as MOT15 / detector files write): fully visible
        vis = 1.0 if r.visibility is None else r.visibility
        rows.setdefault(r.frame, []).append([r.x, r.y, r.x + r.w, r.y + r.h, vis if r.score > 0 else 0.0])
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise UsageError(f"cannot read video {video}")
    out, k = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if k % every == 0:
            lb, r, left, top = letterbox(img, size)
            b = np.asarray(rows.get(k, []), np.float32).reshape(-1, 5)
            b[:, :4] = b[:, :4] * r + np.array([left, top, left, top], np.float32)
            out.append((lb, b))
        k += 1
    cap.release()
    if not out:
        raise UsageError(f"{video}: no frames")
    if not any(len(b) for _, b in out):
        raise UsageError(f"{mot}: no boxes for the frames of {video} (frames are 1-based in MOT files)")
    if not any((b[:, 4] > 0).any() for _, b in out):
        raise UsageError(f"{mot}: every box is marked 'ignore' (score 0 or visibility 0): nothing to learn from")
    return out


def targets(boxes: np.ndarray, grid: tuple[int, int], radius: float, min_visibility: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell (label 1/0, weight 1 or 0 = ignored, box terms ``[4, h, w]``) for one frame."""
    gh, gw = grid
    label = np.zeros((gh, gw), np.float32)
    weight = np.ones((gh, gw), np.float32)
    reg = np.zeros((4, gh, gw), np.float32)
    area_at = np.full((gh, gw), np.inf, np.float32)
    ys, xs = (np.arange(gh) + 0.5) * STRIDE, (np.arange(gw) + 0.5) * STRIDE
    for x1, y1, x2, y2, vis in boxes:
        w, h = x2 - x1, y2 - y1
        if w < 2 or h < 2:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        inside_y = (ys >= y1) & (ys <= y2)
        inside_x = (xs >= x1) & (xs <= x2)
        if vis < min_visibility:  # barely visible: neither person nor background
            weight[np.ix_(inside_y, inside_x)] = 0.0
            continue
        near_y = np.abs(ys - cy) <= max(radius * h / 2, STRIDE / 2)
        near_x = np.abs(xs - cx) <= max(radius * w / 2, STRIDE / 2)
        iy, ix = np.nonzero(near_y[:, None] & near_x[None, :])
        for i, j in zip(iy, ix):
            if w * h < area_at[i, j]:  # a cell in two boxes takes the nearer (smaller) person
                area_at[i, j] = w * h
                label[i, j] = 1.0
                reg[:, i, j] = (cx / STRIDE - (j + 0.5), cy / STRIDE - (i + 0.5),
                                math.log(w / STRIDE), math.log(h / STRIDE))
    weight[label > 0] = 1.0
    return label, weight, reg


def _augment(img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    H, W = size
    img = img.astype(np.float32)
    boxes = boxes.copy()
    s = float(rng.uniform(0.8, 1.25))  # scale jitter about the frame centre, grey outside
    if abs(s - 1.0) > 0.01:
        m = np.float32([[s, 0, (1 - s) * W / 2 + rng.uniform(-0.1, 0.1) * W],
                        [0, s, (1 - s) * H / 2 + rng.uniform(-0.05, 0.05) * H]])
        img = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))
        boxes[:, [0, 2]] = boxes[:, [0, 2]] * s + m[0, 2]
        boxes[:, [1, 3]] = boxes[:, [1, 3]] * s + m[1, 2]
        clip_boxes(boxes, H, W)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes[:, [0, 2]] = W - boxes[:, [2, 0]]
    img = (img - 128.0) * float(rng.uniform(0.7, 1.3)) + 128.0 + float(rng.uniform(-30, 30))
    return np.clip(img, 0, 255), boxes


@dataclass
class DetectorTrainConfig:
    """Training settings (``mvd-edge train-detector`` options)."""

    size: tuple[int, int] = (192, 320)
    width: int = 32
    steps: int = 3000
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 5e-4
    radius: float = 0.3
    min_visibility: float = 0.4
    val_fraction: float = 0.2
    val_every: int = 250
    conf: float = 0.35
    seed: int = 0


def _nms_boxes(boxes: np.ndarray, scores: np.ndarray, conf: float) -> np.ndarray:
    """Thresholded, suppressed x1y1x2y2 boxes from decoded cx, cy, w, h (for validation)."""
    keep = scores >= conf
    b, s = boxes[keep], scores[keep]
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    return xyxy[nms(xyxy, s, 0.5)] if len(xyxy) else xyxy


def evaluate(net: PersonNet, frames: Sequence[tuple[np.ndarray, np.ndarray]], conf: float = 0.35,
             min_visibility: float = 0.5) -> dict[str, float]:
    """Box precision / recall / F1 (IoU 0.5) of ``net`` on letterboxed frames with boxes
    (:func:`mvd_edge.eval.scoring.score_boxes`, plus F1)."""
    from mvd_edge.eval.scoring import score_boxes

    net.eval()
    pred: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for i in range(0, len(frames), 32):
            x = torch.from_numpy(np.stack([f for f, _ in frames[i:i + 32]])).permute(0, 3, 1, 2).float() / 255.0
            boxes, scores = decode(net(x))
            for k in range(len(boxes)):
                pred[i + k] = _nms_boxes(boxes[k].numpy(), scores[k].numpy(), conf)
    gts = [[[0, b[0], b[1], b[2] - b[0], b[3] - b[1], b[4]] for b in gt] for _, gt in frames]
    r = score_boxes(pred, gts, 0.5, min_visibility)
    p, rec = r["precision"], r["recall"]
    return {"precision": p, "recall": rec, "f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
            "tp": r["tp"], "fp": r["fp"], "fn": r["fn"]}


def _loss(raw: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    logit = raw[:, 0]
    p = torch.sigmoid(logit)
    ce = F.binary_cross_entropy_with_logits(logit, label, reduction="none")
    pt = torch.where(label > 0, p, 1 - p)
    alpha = torch.where(label > 0, 0.25, 0.75)
    pos = label > 0
    n = pos.sum().clamp(min=1.0)
    cls = (alpha * (1 - pt) ** 2 * ce * weight).sum() / n
    box = (F.smooth_l1_loss(raw[:, 1:], reg, reduction="none", beta=0.1).sum(1) * pos).sum() / n
    return cls + box


def load_detector(path: str | Path) -> PersonNet:
    """A :class:`PersonNet` from a ``detector.pt`` written by ``train-detector`` (its state dict)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"detector weights not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        net = PersonNet(width=int(state["stem.1.0.weight"].shape[0]))
        net.load_state_dict(state)
    except Exception as exc:  # a truncated file, another model's weights
        raise UsageError(f"{p} is not a train-detector detector.pt ({type(exc).__name__})") from None
    return net


def _split(train: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], val_fraction: float) -> tuple[list, list]:
    """(training frames, validation frames): the last ``val_fraction`` of each video (at least one) is held out."""
    tr, va = [], []
    for frames in train:
        n_val = max(1, int(round(len(frames) * val_fraction))) if len(frames) > 1 else 0
        tr.extend(frames[:len(frames) - n_val])
        va.extend(frames[len(frames) - n_val:])
    return tr, va


def _batch(frames: Sequence[tuple[np.ndarray, np.ndarray]], idx: np.ndarray, rng: np.random.Generator,
           cfg: DetectorTrainConfig) -> tuple[torch.Tensor, ...]:
    """Augmented images ``[B, 3, H, W]`` in 0..1 and their (label, weight, box) targets for frames ``idx``."""
    grid = (cfg.size[0] // STRIDE, cfg.size[1] // STRIDE)
    augmented = [_augment(*frames[int(i)], rng, cfg.size) for i in idx]
    per_frame = [targets(boxes, grid, cfg.radius, cfg.min_visibility) for _, boxes in augmented]
    x = torch.from_numpy(np.stack([img for img, _ in augmented])).permute(0, 3, 1, 2).float() / 255.0
    return x, *(torch.from_numpy(np.stack(t)) for t in zip(*per_frame))


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train_detector(train: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], config: DetectorTrainConfig,
                   progress: bool = False, log=None, init: PersonNet | None = None) -> tuple[PersonNet, dict[str, Any]]:
    """Train on per-video frame lists (from :func:`load_frames`); returns the best net and a report.

    The last ``val_fraction`` of each video's frames (at least one) are the validation set.
    ``init``: start from this net (fine-tuning; its width replaces ``config.width``) instead of
    random weights; its score on the validation frames before training is the first history entry."""
    cfg = config
    if cfg.steps < 1 or cfg.batch < 1:
        raise UsageError(f"steps and batch must be >= 1, got {cfg.steps}, {cfg.batch}")
    if cfg.size[0] % 16 or cfg.size[1] % 16:
        raise UsageError(f"detector input size must be a multiple of 16, got {cfg.size[0]}x{cfg.size[1]}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tr, va = _split(train, cfg.val_fraction)
    if not tr:
        raise UsageError("no training frames")
    net = PersonNet(cfg.width) if init is None else init
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    best: dict[str, Any] = {"f1": -1.0}
    best_state = None
    history = []
    if init is not None and va:  # fine-tuning must beat where it started
        m = evaluate(net, va, cfg.conf)
        history.append({"step": 0, "loss": float("nan"), **m})
        best = {"step": 0, **m}
        best_state = _snapshot(net)
        if log is not None:
            log(f"start: val box P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}")
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, desc="train-detector", unit="step", disable=not progress)
    losses = []
    for step in range(1, cfg.steps + 1):
        net.train()
        x, label, weight, reg = _batch(tr, rng.integers(0, len(tr), cfg.batch), rng, cfg)
        loss = _loss(net(x), label, weight, reg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            m = evaluate(net, va, cfg.conf) if va else {"f1": 0.0, "precision": 0.0, "recall": 0.0}
            history.append({"step": step, "loss": float(np.mean(losses[-cfg.val_every:])), **m})
            if log is not None:
                log(f"step {step}: loss {history[-1]['loss']:.3f}, val box P {m['precision']:.3f} "
                    f"R {m['recall']:.3f} F1 {m['f1']:.3f}")
            if m["f1"] > best["f1"]:
                best = {"step": step, **m}
                best_state = _snapshot(net)
    bar.close()
    if best_state is not None and va:  # without validation frames there is nothing to choose by: the last step
        net.load_state_dict(best_state)
    if not va:
        best = {"step": cfg.steps, "precision": float("nan"), "recall": float("nan"), "f1": float("nan")}
    net.eval()
    report = {"config": {**asdict(cfg), "size": list(cfg.size), "width": int(net.stem[1][0].out_channels)},
              "train_frames": len(tr), "val_frames": len(va), "best": best, "history": history,
              "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:]))}
    return net, report


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path
