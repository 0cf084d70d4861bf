"""PreprocessSpec: every recorded field is honoured by preprocess_batch or refused up front."""

import cv2
import numpy as np
import pytest

from mvd_edge.core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    PreprocessSpec,
    preprocess_batch,
    resize_crop,
)


def _crop(h=37, w=23, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hand(crop_bgr, h, w, flag=cv2.INTER_LINEAR, mean=IMAGENET_MEAN, std=IMAGENET_STD, rgb=True):
    """The network input computed step by step, independently of mvd_edge.core.preprocess."""
    resized = cv2.resize(crop_bgr, (w, h), interpolation=flag)
    chans = resized[:, :, ::-1] if rgb else resized
    x = chans.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def test_default_spec_output_is_the_hand_computation():
    spec = PreprocessSpec(64, 32)
    crops = [_crop(37, 23, 0), _crop(64, 32, 1), _crop(200, 90, 2)]
    got = preprocess_batch(crops, spec)
    want = np.stack([_hand(c, 64, 32) for c in crops])
    assert got.dtype == np.float32 and got.shape == (3, 3, 64, 32)
    assert np.array_equal(got, want)  # bit-identical
    # a uniform B=0, G=128, R=255 crop: channel 0 is R
    flat = np.empty((10, 6, 3), np.uint8)
    flat[:] = (0, 128, 255)
    x = preprocess_batch([flat], PreprocessSpec(4, 2))[0]
    expect = [(255 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(x[:, 0, 0], expect, rtol=1e-6)
    assert PreprocessSpec().to_dict() == {"height": 256, "width": 128, "mean": list(IMAGENET_MEAN),
                                          "std": list(IMAGENET_STD), "color_order": "RGB", "interpolation": "linear"}


def test_color_order_is_honoured():
    sym = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    crops = [_crop(50, 30, 3), _crop(20, 40, 4)]
    rgb = preprocess_batch(crops, PreprocessSpec(16, 8, color_order="RGB", **sym))
    bgr = preprocess_batch(crops, PreprocessSpec(16, 8, color_order="bgr", **sym))
    assert not np.array_equal(rgb, bgr)
    assert np.array_equal(bgr, rgb[:, ::-1])  # channel-swapped
    # mean/std are per network-input channel, i.e. in color_order
    spec = PreprocessSpec(16, 8, color_order="BGR")
    assert np.array_equal(preprocess_batch(crops, spec)[0], _hand(crops[0], 16, 8, rgb=False))
    assert np.array_equal(resize_crop(crops[0], spec), cv2.resize(crops[0], (8, 16)))
    assert PreprocessSpec(color_order="rgb") == PreprocessSpec()  # case-insensitive, stored upper-case
    with pytest.raises(ValueError, match="unsupported color_order 'yuv'"):
        PreprocessSpec(color_order="yuv")


@pytest.mark.parametrize("name", sorted(INTERPOLATIONS))
def test_each_interpolation_is_the_cv2_flag(name):
    crop = _crop(41, 19, 5)
    spec = PreprocessSpec(64, 32, interpolation=name)
    assert np.array_equal(preprocess_batch([crop], spec)[0], _hand(crop, 64, 32, flag=INTERPOLATIONS[name]))


def test_non_default_interpolation_changes_pixels_and_unknown_is_refused():
    crop = _crop(97, 43, 6)
    lin = resize_crop(crop, PreprocessSpec(64, 32))
    for name in ("nearest", "cubic", "area"):
        other = resize_crop(crop, PreprocessSpec(64, 32, interpolation=name))
        assert other.shape == lin.shape and not np.array_equal(other, lin), name
    with pytest.raises(ValueError, match="unsupported interpolation 'sinc'.*linear"):
        PreprocessSpec(interpolation="sinc")
    with pytest.raises(ValueError, match="unsupported interpolation"):
        PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), "interpolation": "bogus"})
    assert PreprocessSpec(interpolation="CUBIC").interpolation == "cubic"


def test_mean_std_and_size_are_honoured_or_refused():
    crop = _crop(30, 30, 7)
    spec = PreprocessSpec(8, 4, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    assert np.array_equal(preprocess_batch([crop], spec)[0],
                          _hand(crop, 8, 4, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7)))
    for bad, match in [(dict(std=(0.2, 0.0, 0.2)), "std must be positive"), (dict(mean=(0.5, 0.5)), "3"),
                       (dict(height=0), "height must be a positive integer"), (dict(width=2.5), "width")]:
        with pytest.raises(ValueError, match=match):
            PreprocessSpec(**bad)
    with pytest.raises(ValueError, match="unknown preprocessing field.*'crop_mode'"):
        PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), "crop_mode": "center"})
    odd = PreprocessSpec(48, 24, (0.1, 0.2, 0.3), (0.5, 0.6, 0.7), "BGR", "area")
    assert PreprocessSpec.from_dict(odd.to_dict()) == odd


def test_models_refuse_specs_their_grayscale_view_cannot_honour(tmp_path):
    import torch
    from conftest import make_checkpoint

    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.model.checkpoint import save_checkpoint
    from mvd_edge.model.net import check_graph_spec

    check_graph_spec(PreprocessSpec(64, 32, interpolation="cubic"))  # size/interpolation: fine
    with pytest.raises(ValueError, match="grayscale.*color_order 'BGR'"):
        check_graph_spec(PreprocessSpec(color_order="BGR"))
    with pytest.raises(ValueError, match=r"grayscale.*mean \[0.5, 0.5, 0.5\].*ImageNet"):
        check_graph_spec(PreprocessSpec(mean=(0.5,) * 3))
    ckpt = make_checkpoint(tmp_path / "c.pt")
    state = torch.load(ckpt, weights_only=True)
    state["preprocess"] = PreprocessSpec(64, 32, std=(0.3, 0.3, 0.3)).to_dict()
    save_checkpoint(state, ckpt)
    with pytest.raises(ValueError, match=r"checkpoint .*c\.pt.*std \[0.3, 0.3, 0.3\]"):
        export_onnx(ckpt, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
