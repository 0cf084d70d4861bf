"""Torch data sets and torchvision (v2) transforms over ``Sample`` lists.

Decoding and resizing go through ``mvd_edge.core.preprocess`` (the one preprocessing shared
with every runtime backend); training augmentation is torchvision v2 on top of it.
Unreadable or corrupt images never crash an epoch: the item is replaced by another image
of the same identity and modality, and the replacement is counted (``bad_paths``).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from mvd_edge.core.preprocess import PreprocessSpec, normalize, read_image, resize_crop
from mvd_edge.data.base import Sample


class RandomChannel(torch.nn.Module):
    """With probability ``p``, replace a uint8 ``[3,H,W]`` image by one of its channels
    (chosen uniformly) copied to all three: channel augmentation in the spirit of CAJ
    (Ye et al., ICCV 2021). Unlike grayscale, which keeps one fixed luminance mix, a random
    channel changes the brightness order of differently coloured garments, so the network
    cannot rely on it; that is exactly the cue a thermal image does not share with the
    colour one. A no-op on IR images (B = G = R)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.p <= 0.0 or float(torch.rand(())) >= self.p:
            return img
        c = int(torch.randint(0, img.shape[-3], ()))
        return img[..., c:c + 1, :, :].expand_as(img).clone()


def train_transform(spec: PreprocessSpec, gray_prob: float = 0.0, channel_prob: float = 0.0) -> v2.Compose:
    """Augmentation on a uint8 RGB ``[3,H,W]`` tensor already at the spec's size -> float normalised.

    ``gray_prob``: probability of replacing an image by its grayscale (3 equal channels),
    which pushes the colour branches towards colour-invariant cues (a no-op on IR images).
    ``channel_prob``: probability of :class:`RandomChannel` (applied after the grayscale draw).
    """
    return v2.Compose([
        v2.RandomGrayscale(p=gray_prob),
        RandomChannel(p=channel_prob),
        v2.RandomHorizontalFlip(p=0.5),
        v2.Pad(padding=max(2, spec.width // 16), padding_mode="constant"),
        v2.RandomCrop((spec.height, spec.width)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(spec.mean), std=list(spec.std)),
        v2.RandomErasing(p=0.5, scale=(0.02, 0.2), value=0),
    ])


class ReidImageDataset(Dataset):
    """Map-style data set: item -> ``(image [3,H,W] float32, label, modality int, cam, replaced)``.

    ``label`` is ``pid_to_label[sample.pid]`` (0..C-1) or -1 when no mapping is given.
    ``replaced`` is 1 when the requested file was unreadable and a stand-in was returned.
    With ``augment=False`` the image is exactly ``preprocess.preprocess_batch`` of the file.
    """

    def __init__(self, samples: Sequence[Sample], spec: PreprocessSpec, pid_to_label: dict[int, int] | None = None,
                 augment: bool = False, gray_prob: float = 0.0, channel_prob: float = 0.0):
        self.samples = list(samples)
        self.spec = spec
        self.pid_to_label = pid_to_label
        self.transform = train_transform(spec, gray_prob, channel_prob) if augment else None
        self.bad_paths: set[str] = set()
        self._groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(self.samples):
            self._groups.setdefault((s.pid, int(s.modality)), []).append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, i: int) -> tuple[np.ndarray, bool]:
        s = self.samples[i]
        img = read_image(str(s.path))
        if img is not None:
            return img, False
        if str(s.path) not in self.bad_paths:
            self.bad_paths.add(str(s.path))
            warnings.warn(f"unreadable image skipped: {s.path}", stacklevel=2)
        group = self._groups[(s.pid, int(s.modality))]
        for j in group[group.index(i) + 1:] + group[: group.index(i)]:
            img = read_image(str(self.samples[j].path))
            if img is not None:
                return img, True
        # nothing readable for this identity/modality: a neutral gray image keeps the batch shape
        return np.full((self.spec.height, self.spec.width, 3), 128, np.uint8), True

    def __getitem__(self, i: int):
        s = self.samples[i]
        bgr, replaced = self._load(i)
        rgb = resize_crop(bgr, self.spec)
        if self.transform is not None:
            x = self.transform(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
        else:
            x = torch.from_numpy(normalize(rgb, self.spec))
        label = self.pid_to_label[s.pid] if self.pid_to_label is not None else -1
        return x, label, int(s.modality), s.cam, int(replaced)


def label_map(samples: Sequence[Sample]) -> dict[int, int]:
    """Identity ids -> contiguous labels 0..C-1 (sorted by id)."""
    return {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}


def loader_iter(loader: DataLoader) -> Iterator:
    """``iter(loader)``, with the parent process's objects kept out of its forked workers' garbage collector.

    A forked worker inherits every object of the parent, garbage included; a collection in the worker can
    then run the destructor of, say, an ONNX Runtime session the parent left behind, whose locks belong
    to threads that do not exist in the child, and the worker hangs for good (seen in the demo's
    distillation, after its verify and calibration stages). So the parent collects first and freezes
    what is left while the workers fork (the workers keep it frozen; the parent unfreezes at once)."""
    if not loader.num_workers:
        return iter(loader)
    gc.collect()
    gc.freeze()
    try:
        return iter(loader)  # forks the workers
    finally:
        gc.unfreeze()
