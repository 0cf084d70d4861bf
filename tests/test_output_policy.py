"""An output path that is (or resolves to) one of the command's inputs is refused before anything is
written: the input survives byte for byte and the error is one line naming both."""

from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.cli._common import refuse_overwriting_inputs
from mvd_edge.core.errors import UsageError


def _fill(args: list[str], names: dict) -> list[str]:
    """``args`` with each ``{name}`` (a whole argument or part of one: ``outputs.video={rgb.mp4}``) replaced."""
    return [re.sub(r"\{([^{}]+)\}", lambda m: str(names[m.group(1)]), a) for a in args]


def _run(args):
    r = CliRunner().invoke(app, args)
    return r.exit_code, r.output


@pytest.fixture()
def files(tmp_path):
    made = {}
    for name in ("ck.pt", "m.onnx", "ir.mp4", "rgb.mp4", "gt.json", "ev.jsonl"):
        p = tmp_path / name
        p.write_bytes(os.urandom(64))
        made[name] = p
    return made


def _intact(path, before):
    assert path.read_bytes() == before


@pytest.mark.parametrize("args, victim", [
    (["export", "{ck.pt}", "--out", "{ck.pt}"], "ck.pt"),
    (["fp16", "{m.onnx}", "--out", "{m.onnx}"], "m.onnx"),
    (["build-engine", "{m.onnx}", "--out", "{m.onnx}"], "m.onnx"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--events", "{ir.mp4}"], "ir.mp4"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--set", "outputs.video={rgb.mp4}"],
     "rgb.mp4"),
    (["score-matches", "{ev.jsonl}", "{gt.json}", "--json", "{gt.json}"], "gt.json"),
], ids=["export", "fp16", "build-engine", "match-events", "match-save", "score-matches"])
def test_output_equal_to_an_input_is_refused(files, args, victim):
    before = files[victim].read_bytes()
    code, out = _run(_fill(args, files))
    assert code == 2 and "would destroy the input" in out, out
    _intact(files[victim], before)


def test_paths_that_resolve_to_an_input_are_refused_too(files, tmp_path):
    link = tmp_path / "link.mp4"
    link.symlink_to(files["ir.mp4"])
    before = files["ir.mp4"].read_bytes()
    sub = tmp_path / "sub"
    sub.mkdir()
    for alias in (link, sub / ".." / "ir.mp4"):
        code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model",
                          "colorhist", "--set", f"outputs.video={alias}"])
        assert code == 2 and "would destroy the input" in out, out
    _intact(files["ir.mp4"], before)


def test_the_check_ignores_cameras_urls_and_unset_options(tmp_path):
    refuse_overwriting_inputs({"--events": tmp_path / "ev.jsonl", "outputs.video": None},
                              {"--ir source": "cam0", "--rgb source": "rtsp://10.0.0.6/main", "--cameras": None})
    with pytest.raises(UsageError, match="--events .* is the --ir source itself"):
        refuse_overwriting_inputs({"--events": tmp_path / "a"}, {"--ir source": tmp_path / "a"})


@pytest.mark.parametrize("key, value", [("association.threshold", "5"), ("association.threshold", "-1.5"),
                                        ("association.margin", "-0.1"), ("detector.conf", "1.5"),
                                        ("crop.max_occlusion", "0"), ("association.hysteresis", "0"),
                                        ("sources.queue_size", "0"), ("association.threshold", ".nan")])
def test_match_numeric_settings_are_bounded(files, key, value):
    code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", "colorhist",
                      "--set", f"{key}={value}"])
    assert code == 2 and f"{key} must be" in out, out


def test_score_matches_refuses_bad_bounds_and_empty_events(tmp_path):
    from mvd_edge.synth.video import write_synth_video

    clip = write_synth_video(tmp_path / "clip", n_ids=2, seconds=0.5, fps=4, size=(90, 160))
    events = tmp_path / "ev.jsonl"
    events.write_text("")
    code, out = _run(["score-matches", str(events), clip["gt"]])
    assert code == 2 and "no events" in out
    events.write_text('{"event": "start"}\n')
    for opt, value in (("--iou", "1.5"), ("--iou", "0"), ("--min-visibility", "7")):
        code, out = _run(["score-matches", str(events), clip["gt"], opt, value])
        assert code == 2 and "must be in" in out, out


@pytest.mark.parametrize("args, existing", [
    (["export", "{ck.pt}", "--out", "{old.onnx}"], "old.onnx"),
    (["fp16", "{m.onnx}", "--out", "{old.onnx}"], "old.onnx"),
    (["build-engine", "{m.onnx}", "--out", "{old.onnx}"], "old.onnx"),
    (["int8", "{m.onnx}", "--out-dir", "{dir}", "--manifest", "{ev.jsonl}", "--flavours", "cpu"], "m.int8-cpu.onnx"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--events", "{old.jsonl}"],
     "old.jsonl"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--set", "outputs.video={old.mp4}"],
     "old.mp4"),
    (["score-matches", "{ev.jsonl}", "{gt.json}", "--json", "{old.json}"], "old.json"),
    (["synth", "--out", "{dir}"], "m.int8-cpu.onnx"),
    (["synth-video", "--out", "{dir}"], "m.int8-cpu.onnx"),
])
def test_an_existing_output_is_kept_unless_overwrite_is_given(files, tmp_path, args, existing):
    """Nothing a user already has is replaced without asking; with --overwrite the check steps aside."""
    folder = tmp_path / "out"
    folder.mkdir()
    olds = {n: tmp_path / n for n in ("old.onnx", "old.jsonl", "old.mp4", "old.json")}
    olds["m.int8-cpu.onnx"] = folder / "m.int8-cpu.onnx"
    for p in olds.values():
        p.write_bytes(b"the user's")
    names = {**{k: str(v) for k, v in files.items()}, **{k: str(v) for k, v in olds.items()}, "dir": str(folder)}
    argv = _fill(args, names)
    code, out = _run(argv)
    assert code == 2 and ("already exists" in out or "folder is not empty" in out) and "--overwrite" in out, out
    assert olds[existing].read_bytes() == b"the user's"
    code, out = _run(argv + ["--overwrite"])
    assert "already exists" not in out and "folder is not empty" not in out  # (the random inputs may fail later)


def test_synth_onto_a_file_is_one_line_not_a_traceback(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    code, out = _run(["synth", "--out", str(f), "--ids", "12", "--overwrite"])
    assert code == 2 and "exists and is not a folder" in out and "Traceback" not in out


@pytest.mark.parametrize("args, report", [
    (["verify", "{ck.pt}", "{m.onnx}", "--json", "{out}", "--png", "{dir}/v.png"], "out"),
    (["verify", "{ck.pt}", "{m.onnx}", "--json", "{dir}/v.json", "--png", "{out}"], "out"),
    (["eval", "{ck.pt}", "--json", "{out}"], "out"),
    (["eval", "{ck.pt}", "--png", "{out}"], "out"),
    (["profile", "{m.onnx}", "--out", "{dir}"], "dir/profile.json"),
    (["bench", "{ck.pt}", "--out", "{dir}"], "dir/bench.json"),
], ids=["verify-json", "verify-png", "eval-json", "eval-png", "profile", "bench"])
def test_reports_are_not_rewritten_without_overwrite(files, tmp_path, args, report):
    """A report a user already has (an earlier verify, eval, profile or bench) is refused before
    any work; with --overwrite the command goes on (and here fails on the fake inputs instead)."""
    folder = tmp_path / "reports"
    folder.mkdir()
    target = tmp_path / "old-report" if report == "out" else folder / report.split("/", 1)[1]
    target.write_text("an earlier report\n")
    argv = [str(files[a[1:-1]]) if a[1:-1] in files else a for a in args]
    argv = [a.replace("{out}", str(target)).replace("{dir}", str(folder)) for a in argv]
    code, out = _run(argv)
    assert code == 2 and "already exists; add --overwrite" in out, out
    assert target.read_text() == "an earlier report\n"
    code, out = _run(argv + ["--overwrite"])
    assert "already exists" not in out and code != 0  # past the policy: the fake checkpoint/engine is refused


# ---------------------------------------------------------------- cases an independent tester found


def test_an_engine_s_sidecar_counts_as_part_of_the_engine(files, tmp_path):
    sidecar = files["m.onnx"].with_name("m.onnx.json")
    sidecar.write_text('{"format": "x"}')
    before = sidecar.read_bytes()
    for args in (["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", str(files["m.onnx"]),
                  "--events", str(sidecar), "--overwrite"],
                 ["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", str(files["m.onnx"]),
                  "--set", f"outputs.summary_json={sidecar}", "--overwrite"],
                 ["verify", str(files["ck.pt"]), str(files["m.onnx"]), "--json", str(sidecar), "--overwrite"]):
        code, out = _run(args)
        assert code == 2 and "sidecar of the" in out and "would destroy the input" in out, out
    assert sidecar.read_bytes() == before


def test_an_onnx_detector_is_an_input_too(files):
    det = files["m.onnx"]
    before = det.read_bytes()
    code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", "colorhist",
                      "--set", f"detector.name={det}", "--events", str(det), "--overwrite"])
    assert code == 2 and "detector.ir" in out and "would destroy the input" in out, out
    assert det.read_bytes() == before


def test_two_outputs_on_one_path_are_refused(files, tmp_path):
    same = tmp_path / "same.png"
    for args in (["eval", str(files["ck.pt"]), "--json", str(same), "--png", str(same)],
                 ["verify", str(files["ck.pt"]), str(files["m.onnx"]), "--json", str(same), "--png", str(same)]):
        code, out = _run(args)
        assert code == 2 and "are the same file" in out, out
    assert not same.exists()


@pytest.mark.parametrize("command", [
    ["export", "{ck.pt}", "--out", "{ck.pt}/x.onnx"],
    ["fp16", "{m.onnx}", "--out", "{ck.pt}/x.onnx"],
    ["build-engine", "{m.onnx}", "--out", "{ck.pt}/x.onnx"],
    ["eval", "{ck.pt}", "--json", "{gt.json}/e.json"],
    ["profile", "{m.onnx}", "--out", "{gt.json}"],
    ["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--events", "{ck.pt}/e.jsonl"],
], ids=["export", "fp16", "build-engine", "eval", "profile", "match"])
def test_an_output_inside_a_file_is_one_line(files, command):
    argv = [a.replace("{ck.pt}", str(files["ck.pt"])).replace("{m.onnx}", str(files["m.onnx"]))
            .replace("{gt.json}", str(files["gt.json"])).replace("{ir.mp4}", str(files["ir.mp4"]))
            .replace("{rgb.mp4}", str(files["rgb.mp4"])) for a in command]
    code, out = _run(argv)
    assert code == 2 and "is a file, not a folder" in out and "Traceback" not in out, out


@pytest.mark.parametrize("args, message", [
    (["eval", "{ck.pt}", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["eval", "{ck.pt}", "--png", "{dir}/chart.x"], "a chart is written as .png"),
    (["eval", "{ck.pt}", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--out", "{dir}/r", "--set", "device=tpu"], "device: unknown device 'tpu'"),
    (["train", "--out", "{dir}/r", "--set", "data.workers=-1"], "data.workers must be >= 0"),
    (["train", "--out", "{dir}/r", "--resume", "--overwrite"], "choose one"),
    (["synth-video", "--out", "{dir}/v", "--fps", "inf"], "--fps must be in"),
    (["synth-video", "--out", "{dir}/v", "--seconds", "1e12"], "--seconds must be in"),
    (["bench", "{ck.pt}", "--out", "{dir}/b", "--iters", "0"], "--iters must be >= 1"),
    (["profile", "{m.onnx}", "--out", "{dir}/p", "--batch", "100000"], "at most 4096"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--set", "detector.hog_threshold=.nan"],
     "detector.hog_threshold must be a finite number in"),
], ids=["batch-size", "png-suffix", "eval-device", "train-device", "workers", "resume-overwrite", "fps-inf",
        "seconds-huge", "bench-iters", "profile-batch", "hog-nan"])
def test_bad_options_are_one_line(files, tmp_path, args, message):
    argv = [a.replace("{ck.pt}", str(files["ck.pt"])).replace("{m.onnx}", str(files["m.onnx"]))
            .replace("{ir.mp4}", str(files["ir.mp4"])).replace("{rgb.mp4}", str(files["rgb.mp4"]))
            .replace("{dir}", str(tmp_path)) for a in args]
    code, out = _run(argv)
    assert code == 2 and message in out and "Traceback" not in out, out


def test_binary_box_files_and_non_detector_models_are_one_line(files, tmp_path):
    from pathlib import Path

    binary = tmp_path / "bin.mot"
    binary.write_bytes(bytes(range(256)) * 4)
    code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", "colorhist",
                      "--set", f"detector.ir_boxes={binary}", "--set", f"detector.rgb_boxes={binary}"])
    assert code == 2 and "not a text file" in out, out
    nan_rows = tmp_path / "nan.mot"
    nan_rows.write_text("1,1,10,10,nan,40,1\n")
    code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", "colorhist",
                      "--set", f"detector.ir_boxes={nan_rows}", "--set", f"detector.rgb_boxes={nan_rows}"])
    assert code == 2 and "not a finite number" in out, out
    reid = Path(__file__).parent / "data" / "edge" / "tiny.onnx"  # an embedding model, not a detector
    code, out = _run(["match", "--ir", str(files["ir.mp4"]), "--rgb", str(files["rgb.mp4"]), "--model", "colorhist",
                      "--set", f"detector.name={reid}"])
    assert code == 2 and "is not a detector's" in out, out


# ---------------------------------------------------------------- issue 34: identity is the file, not the name


@pytest.mark.parametrize("args, victim", [
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--events", "{link}"], "ir.mp4"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--set", "outputs.video={link}"],
     "rgb.mp4"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "colorhist", "--set",
      "outputs.summary_json={link}"], "ir.mp4"),
    (["match", "--ir", "{ir.mp4}", "--rgb", "{rgb.mp4}", "--model", "{m.onnx}", "--events", "{link}"], "m.onnx"),
    (["export", "{ck.pt}", "--out", "{link}"], "ck.pt"),
    (["fp16", "{m.onnx}", "--out", "{link}"], "m.onnx"),
    (["build-engine", "{m.onnx}", "--out", "{link}"], "m.onnx"),
    (["score-matches", "{ev.jsonl}", "{gt.json}", "--json", "{link}"], "gt.json"),
    (["eval", "{ck.pt}", "--json", "{link}"], "ck.pt"),
], ids=["match-events", "match-save", "match-summary", "match-engine", "export", "fp16", "build-engine",
        "score-matches", "eval"])
def test_a_hard_link_of_an_input_is_the_input(files, tmp_path, args, victim):
    """`ln ir.mp4 ev.jsonl` makes one file with two names: writing either destroys the input."""
    link = tmp_path / "sub" / "hardlink.out"
    link.parent.mkdir()
    os.link(files[victim], link)
    before = files[victim].read_bytes()
    argv = _fill(args, {**files, "link": link})
    code, out = _run(argv + ["--overwrite"])
    assert code == 2 and "would destroy the input" in out, out
    _intact(files[victim], before)


def test_two_outputs_that_are_hard_links_of_each_other_are_refused(files, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("{}")
    os.link(a, b)
    code, out = _run(["eval", str(files["ck.pt"]), "--json", str(a), "--png", str(b.with_suffix(".png")),
                      "--overwrite"])
    assert "same file" not in out  # different files: past the check
    with pytest.raises(UsageError, match="are the same file"):
        refuse_overwriting_inputs({"--events": a, "--summary-json": b}, {})


def test_the_policy_compares_files_not_names(tmp_path):
    """Engines, checkpoints, data files: a hard link of any input counts as the input."""
    from mvd_edge.cli._common import file_identity

    for name in ("model.engine", "last.pt", "gt.json"):
        src = tmp_path / name
        src.write_bytes(b"x")
        os.link(src, tmp_path / f"copy-{name}")
        with pytest.raises(UsageError, match="would destroy the input"):
            refuse_overwriting_inputs({"--out": tmp_path / f"copy-{name}"}, {"the input": src})
    assert file_identity(tmp_path / "model.engine") == file_identity(tmp_path / "copy-model.engine")
    assert file_identity(tmp_path / "new") == file_identity(tmp_path / "x" / ".." / "new")  # not there yet: by path
    refuse_overwriting_inputs({"--out": tmp_path / "new"}, {"the input": tmp_path / "model.engine"})


def test_train_refuses_an_out_folder_whose_checkpoint_is_a_hard_link_of_its_pretrained_weights(tmp_path):
    """`train --out` would overwrite best.pt / last.pt: one that is the same file as --pretrained (a hard
    link, not only the same name) is refused before anything runs."""
    from typer.testing import CliRunner

    from mvd_edge.cli import app

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"imagenet weights")
    (tmp_path / "run").mkdir()
    os.link(weights, tmp_path / "run" / "last.pt")
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "--pretrained", str(weights),
                                 "--backbone", "resnet18", "--overwrite"])
    assert r.exit_code == 2 and "model.pretrained" in r.output and "last.pt" in r.output, r.output
    assert weights.read_bytes() == b"imagenet weights"
