"""MVDNet structure, recipes, grayscale view, weight loading."""

import pytest
import torch
from torchvision.models import resnet18

from mvd_edge.core.preprocess import GRAY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD
from mvd_edge.core.spec import FULL_ORDER, ModelSpec
from mvd_edge.model.net import MVDNet, WeightsError, default_bottleneck


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MVDNet(num_classes=7, backbone="tiny")


def test_training_outputs_cover_four_observations(tiny):
    tiny.train()
    out = tiny(torch.randn(4, 3, 64, 32))
    assert set(out) == {"rgb", "ir", "shared_x", "shared_g"}
    for o in out.values():
        assert o["f"].shape == (4, tiny.feat_dim)
        assert o["v"].shape == (4, tiny.feat_dim)
        assert o["z"].shape == (4, tiny.z_dim)
        assert o["logits_v"].shape == (4, 7) and o["logits_z"].shape == (4, 7)


@pytest.mark.parametrize("recipe", ["full", "shared", "z"])
def test_eval_recipes_are_l2_normalised_with_documented_dims(tiny, recipe):
    tiny.eval()
    with torch.no_grad():
        e = tiny(torch.randn(3, 3, 64, 32), recipe)
    assert e.shape == (3, tiny.embedding_dim(recipe))
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert tiny.embedding_dim("full") == 4 * tiny.feat_dim
    assert tiny.embedding_dim("z") == tiny.z_dim


def test_full_recipe_is_release_order_concat(tiny):
    tiny.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        obs = tiny.observe(x)
        expect = torch.nn.functional.normalize(torch.cat([obs[n][1] for n in FULL_ORDER], 1), dim=1)
        assert torch.allclose(tiny(x, "full"), expect, atol=1e-6)
        z = tiny.branches["shared"].head.bottleneck(obs["shared_x"][1])
        assert torch.allclose(tiny(x, "z"), torch.nn.functional.normalize(z, dim=1), atol=1e-6)


def test_cheap_recipes_run_only_the_shared_branch(tiny):
    tiny.eval()
    calls = []
    hooks = [tiny.branches[b].trunk.register_forward_hook(lambda m, i, o, b=b: calls.append(b))
             for b in ("rgb", "ir", "shared")]
    with torch.no_grad():
        tiny(torch.randn(1, 3, 64, 32), "shared")
        assert calls == ["shared"]
        calls.clear()
        tiny(torch.randn(1, 3, 64, 32), "full")
        assert sorted(calls) == ["ir", "rgb", "shared", "shared"]
    for h in hooks:
        h.remove()


def test_grayscale_view_is_luma_of_the_unnormalised_image(tiny):
    rgb = torch.rand(2, 3, 8, 4)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    g = tiny.grayscale((rgb - mean) / std) * std + mean
    luma = sum(w * rgb[:, i] for i, w in enumerate(GRAY_WEIGHTS))
    for c in range(3):
        assert torch.allclose(g[:, c], luma, atol=1e-5)


def test_last_stride_one_doubles_the_final_map():
    m1 = MVDNet(3, "tiny", last_stride=1).eval()
    m2 = MVDNet(3, "tiny", last_stride=2).eval()
    x = torch.randn(1, 3, 64, 32)
    assert m1.branches["rgb"].trunk(x).shape[-2:] == (8, 4)
    assert m2.branches["rgb"].trunk(x).shape[-2:] == (4, 2)


def test_branches_share_no_parameters(tiny):
    ids = [{id(p) for p in tiny.branches[b].parameters()} for b in ("rgb", "ir", "shared")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_paper_bottleneck_sizes():
    assert default_bottleneck(2048) == (1000, 500, 512)


def test_spec_roundtrip_rebuilds_identical_architecture(tiny):
    spec = ModelSpec.from_dict(tiny.spec.to_dict())
    clone = MVDNet.from_spec(spec)
    clone.load_state_dict(tiny.state_dict())  # strict: same keys and shapes


def test_imagenet_weights_load_from_local_file(tmp_path):
    ref = resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    m = MVDNet(5, "resnet18", pretrained=path)
    assert torch.equal(m.branches["ir"].trunk[0][0].weight, ref.conv1.weight)
    assert torch.equal(m.branches["shared"].trunk[4][1].conv2.weight, ref.layer4[1].conv2.weight)


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        MVDNet(5, "resnet18", pretrained=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read"):
        MVDNet(5, "resnet18", pretrained=bad)
    wrong = tmp_path / "wrong.pth"
    torch.save(resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(WeightsError, match="does not fit"):
        MVDNet(5, "resnet50", pretrained=wrong)
    with pytest.raises(ValueError, match="unknown backbone"):
        MVDNet(5, "vgg")
    with pytest.raises(ValueError, match="unknown recipe"):
        MVDNet(5, "tiny", recipe="half")


def test_resnet50_forward_backward_cpu_batch4():
    """The paper configuration (3 x ResNet-50, last stride 1, 256x128) trains on the CPU at batch 4."""
    torch.manual_seed(0)
    m = MVDNet(num_classes=395, backbone="resnet50").train()
    out = m(torch.randn(4, 3, 256, 128))
    assert out["rgb"]["v"].shape == (4, 2048) and out["rgb"]["z"].shape == (4, 512)
    loss = sum(o["logits_v"].logsumexp(1).mean() + o["logits_z"].logsumexp(1).mean() for o in out.values())
    loss.backward()
    assert m.branches["ir"].trunk[0][0].weight.grad is not None
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 256, 128)).shape == (1, 8192)
