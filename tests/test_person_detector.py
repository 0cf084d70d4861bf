"""The trainable ONNX person detector (mvd_edge.train.detector): targets, training, export in the
three layouts OnnxDetector reads, the layouts' decoding against the torch model's own output, and the
train-detector command end to end through match."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the detector trainer needs torch (mvd-edge[train])")
pytest.importorskip("onnxruntime", reason="running the exported detector needs onnxruntime")

from mvd_edge.core.errors import UsageError  # noqa: E402
from mvd_edge.match.detect import OnnxDetector, box_iou, letterbox, nms  # noqa: E402
from mvd_edge.synth.video import SynthVideoRenderer  # noqa: E402
from mvd_edge.train.detector import (  # noqa: E402
    STRIDE,
    DetectorTrainConfig,
    decode,
    export_detector,
    targets,
    train_detector,
)

SIZE = (96, 160)


def test_targets_known_answer():
    # one 40 x 80 person centred at (60, 44) on a 12 x 20 grid, one barely visible person elsewhere
    boxes = np.array([[40, 4, 80, 84, 1.0], [120, 10, 150, 80, 0.1]], np.float32)
    label, weight, reg = targets(boxes, (12, 20), radius=0.3, min_visibility=0.4)
    iy, ix = np.nonzero(label)
    # centre sampling: cells whose centre is within 0.3 x half the box (at least half a cell) of its centre:
    # x within 6 px of 60 -> the cell at 60 only; y within 12 px of 44 -> the cells at 36, 44, 52
    assert set(ix) == {7} and set(iy) == {4, 5, 6}
    i, j = 5, 7  # cell centre (60, 44): exactly the box centre
    assert reg[:, i, j] == pytest.approx([60 / STRIDE - 7.5, 44 / STRIDE - 5.5, math.log(40 / STRIDE),
                                          math.log(80 / STRIDE)])
    ignored = weight == 0
    assert ignored.any() and not (ignored & (label > 0)).any()
    assert ignored[2:10, 15:19].all()  # inside the barely visible person: neither person nor background
    assert weight[0, 0] == 1 and label[0, 0] == 0


def _frames(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    r = SynthVideoRenderer(n_ids=3, seed=seed, size=(180, 320))
    out = []
    for k in range(0, 2 * n, 2):
        for stream in ("ir", "rgb"):
            img, gts = r.render(stream, k)
            lb, s, left, top = letterbox(img, SIZE)
            b = np.array([[x * s + left, y * s + top, (x + w) * s + left, (y + h) * s + top, v]
                          for _, x, y, w, h, v in gts], np.float32).reshape(-1, 5)
            out.append((lb, b))
    return out


@pytest.fixture(scope="module")
def trained():
    cfg = DetectorTrainConfig(size=SIZE, width=16, steps=80, batch=4, lr=1e-2, val_every=40, seed=0)
    frames = _frames(12, 5)
    net, report = train_detector([frames], cfg)
    return net, report, frames


def test_training_lowers_the_loss_and_keeps_the_best_validation_step(trained):
    from mvd_edge.train.detector import evaluate

    net, report, frames = trained
    assert report["last_loss"] < 0.7 * report["first_loss"], report
    # the returned weights are the ones that scored best on the held-out last 20 % of the video
    assert evaluate(net, frames[-report["val_frames"]:], 0.35)["f1"] == pytest.approx(report["best"]["f1"])
    assert report["config"]["width"] == 16
    steps = [h["step"] for h in report["history"]]
    assert steps == [40, 80]
    assert report["best"]["f1"] == max(h["f1"] for h in report["history"])
    assert report["val_frames"] >= 1 and report["train_frames"] >= 10
    assert not net.training


def test_mot_files_without_visibility_and_with_bad_frames(tmp_path):
    from mvd_edge.synth.video import write_synth_video
    from mvd_edge.train.detector import load_frames

    clip = write_synth_video(tmp_path / "clip", n_ids=2, seconds=1.0, fps=5, size=(180, 320))
    rows = [line.split(",") for line in open(clip["mot"]["rgb"]).read().splitlines()]
    mot15 = tmp_path / "mot15.txt"  # MOT15 / detector-output style: -1 in the visibility column
    mot15.write_text("".join(",".join(r[:6] + ["1", "-1", "-1", "-1"]) + "\n" for r in rows))
    frames = load_frames(clip["videos"]["rgb"], mot15, SIZE)
    assert sum(len(b) for _, b in frames) == len(rows) and all((b[:, 4] == 1.0).all() for _, b in frames)
    zero_based = tmp_path / "zero.txt"
    zero_based.write_text("0,1,10,10,20,40\n")
    with pytest.raises(UsageError, match="1-based"):
        load_frames(clip["videos"]["rgb"], zero_based, SIZE)
    ignored = tmp_path / "ignored.txt"
    ignored.write_text("1,1,10,10,20,40,0\n")
    with pytest.raises(UsageError, match="ignore"):
        load_frames(clip["videos"]["rgb"], ignored, SIZE)


def test_bad_training_settings():
    with pytest.raises(UsageError, match="multiple of 16"):
        train_detector([_frames(2, 1)], DetectorTrainConfig(size=(90, 160), steps=1))
    with pytest.raises(UsageError):
        train_detector([_frames(2, 1)], DetectorTrainConfig(size=SIZE, steps=0))


def _torch_boxes(net, image: np.ndarray, conf: float, suppress: bool = True) -> np.ndarray:
    """The torch model's own detections on a BGR frame, with OnnxDetector's post-processing written out."""
    lb, r, left, top = letterbox(image, SIZE)
    x = torch.from_numpy(lb).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        b, s = decode(net(x))
    b, s = b[0].numpy(), s[0].numpy()
    keep = s >= conf
    b, s = b[keep], s[keep]
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    if suppress:
        xyxy = xyxy[nms(xyxy, s, 0.5)]
    xyxy = (xyxy - np.array([left, top, left, top], np.float32)) / r
    h, w = image.shape[:2]
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
    ok = (xyxy[:, 2] - xyxy[:, 0] > 1) & (xyxy[:, 3] - xyxy[:, 1] > 1)
    return xyxy[ok]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    return {lay: export_detector(trained[0], d / f"det-{lay}.onnx", SIZE, lay) for lay in ("v8", "v5", "e2e")}


def test_each_layout_decodes_to_the_torch_models_boxes(trained, exported):
    net = trained[0]
    conf = 0.05  # the briefly trained model is unsure: a low bar gives boxes to compare
    dets = {lay: OnnxDetector(exported[lay], conf=conf, layout="auto") for lay in ("v8", "v5", "e2e")}
    assert all(d.input_hw == SIZE for d in dets.values())
    renderer = SynthVideoRenderer(n_ids=3, seed=99, size=(180, 320))  # frames the detector never saw
    seen = 0
    for k in (0, 9, 21):
        for stream in ("ir", "rgb"):
            img, _ = renderer.render(stream, k)
            ref = _torch_boxes(net, img, conf)
            v8, v5, e2e = (dets[lay].detect(img, k) for lay in ("v8", "v5", "e2e"))
            seen += len(ref)
            assert len(v8) == len(ref) and np.allclose(v8.boxes, ref, atol=0.05), (v8.boxes, ref)
            assert np.allclose(v5.boxes, v8.boxes, atol=1e-3) and np.allclose(v5.scores, v8.scores, atol=1e-4)
            # e2e suppresses inside the graph (3x3 peaks), then NMS: each of its boxes is one of the torch
            # model's cells, no two overlap, and the best box is the same as after NMS over every cell
            cells = _torch_boxes(net, img, conf, suppress=False)
            for b in e2e.boxes:
                assert np.abs(cells - b).max(axis=1).min() < 0.05, b
            iou = box_iou(e2e.boxes, e2e.boxes)
            assert (iou[~np.eye(len(iou), dtype=bool)] <= 0.5).all()
            if len(ref):
                assert len(e2e) >= 1
                assert box_iou(e2e.boxes[:1], v8.boxes[:1])[0, 0] > 0.99
    assert seen >= 3  # the comparison had boxes to compare


def test_e2e_graph_output_matches_torch(trained, exported):
    import onnxruntime as ort

    from mvd_edge.train.detector import _Export

    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        want = _Export(trained[0], "e2e", 100)(x).numpy()
    got = ort.InferenceSession(str(exported["e2e"]), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert got.shape == (1, 100, 6)
    peaks = want[0, :, 4] > 0  # the kept cells; the rest score 0 in any order
    assert peaks.sum() >= 1 and np.allclose(got[0, :, 4], want[0, :, 4], atol=1e-5)
    assert np.allclose(got[0, peaks], want[0, peaks], atol=1e-3)
    assert (np.diff(got[0, :, 4]) <= 1e-6).all()  # sorted by score


def test_train_detector_command_and_match(tmp_path):
    from typer.testing import CliRunner

    from mvd_edge.cli import app

    runner = CliRunner()
    clip = tmp_path / "clip"
    r = runner.invoke(app, ["synth-video", "--out", str(clip), "--ids", "3", "--seconds", "2", "--fps", "10",
                            "--size", "180x320"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "det"
    args = ["train-detector", "--synth", str(clip), "--out", str(out), "--steps", "6", "--batch", "2",
            "--size", "96x160", "--every", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "detector.onnx").is_file() and (out / "detector.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "v8" and report["train_frames"] + report["val_frames"] == 40
    r = runner.invoke(app, args)  # never replaces a detector silently
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(app, ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"), "--model",
                            "colorhist", "--set", f"detector.name={out / 'detector.onnx'}", "--max-frames", "3",
                            "--no-status", "--set", f"outputs.summary_json={tmp_path / 's.json'}"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s.json").read_text())["detector"] == {"ir": "onnx", "rgb": "onnx"}
    r = runner.invoke(app, ["train-detector", "--video", str(clip / "ir.mp4"), "--out", str(tmp_path / "d2")])
    assert r.exit_code == 2 and "one --boxes per --video" in r.output
    # fine-tuning on one camera's own boxes, from the first run's weights: it starts where that one ended
    ft = tmp_path / "ft"
    r = runner.invoke(app, ["train-detector", "--video", str(clip / "rgb.mp4"), "--boxes", str(clip / "rgb.mot.txt"),
                            "--out", str(ft), "--steps", "2", "--batch", "2", "--size", "96x160", "--every", "1",
                            "--init", str(out / "detector.pt")])
    assert r.exit_code == 0, r.output
    hist = json.loads((ft / "report.json").read_text())["history"]
    assert [h["step"] for h in hist] == [0, 2]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = runner.invoke(app, ["train-detector", "--synth", str(clip), "--out", str(tmp_path / "d3"), "--init",
                            str(tmp_path / "junk.pt")])
    assert r.exit_code == 2 and "is not a train-detector detector.pt" in r.output
