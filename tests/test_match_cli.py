"""The match, synth-video and score-matches commands (mvd_edge.cli.match), through the root CLI app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def app():
    from mvd_edge.cli import app as root

    return root


def pair(clip, *extra) -> list[str]:
    """``match`` on the clip's two videos with their ground-truth boxes and the colour-histogram model."""
    return ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"), "--model", "colorhist",
            "--set", f"detector.ir_boxes={clip / 'ir.mot.txt'}", "--set", f"detector.rgb_boxes={clip / 'rgb.mot.txt'}",
            "--no-status", *extra]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, app):
    out = tmp_path_factory.mktemp("clip")
    r = CliRunner().invoke(app, ["synth-video", "--out", str(out), "--ids", "3", "--seconds", "2", "--fps", "10",
                                 "--size", "240x426", "--ir-modality", "rgb"])
    assert r.exit_code == 0, r.output
    return out


def test_synth_match_score_round_trip(tmp_path, app, clip):
    runner = CliRunner()
    ev = tmp_path / "ev.jsonl"
    r = runner.invoke(app, pair(clip, "--events", str(ev), "--set", f"outputs.summary_json={tmp_path / 's.json'}",
                                "--set", "association.hysteresis=3"))
    assert r.exit_code == 0, r.output
    assert "20 frame pairs" in r.output and "fps" in r.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 20 and summary["events"]["match"] > 0
    r = runner.invoke(app, ["score-matches", str(ev), str(clip / "gt.json"), "--json", str(tmp_path / "score.json")])
    assert r.exit_code == 0, r.output
    assert "pair precision" in r.output.replace("\n", " ") or "precisi" in r.output
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["precision"] >= 0.9 and score["recall"] > 0.3


def test_profile_status_and_max_frames(tmp_path, app, clip):
    r = CliRunner().invoke(app, ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"),
                                 "--model", "colorhist", "--max-steps", "3", "--set", "outputs.profile=true"])
    assert r.exit_code == 0, r.output
    assert "3 frame pairs" in r.output and "detect.ir" in r.output


def test_user_errors_are_one_line(tmp_path, app, clip):
    runner = CliRunner()
    r = runner.invoke(app, ["match", "--ir", str(tmp_path / "none.mp4"), "--rgb", "cam1", "--model", "colorhist"])
    assert r.exit_code == 2 and "source not found" in r.output
    r = runner.invoke(app, ["match", "--ir", "lobby", "--rgb", "cam1", "--model", "colorhist"])
    assert r.exit_code == 2 and "unknown source 'lobby'" in r.output
    r = runner.invoke(app, ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"), "--model",
                            str(tmp_path / "none.onnx")])
    assert r.exit_code == 2 and "engine not found" in r.output
    r = runner.invoke(app, ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"), "--model",
                            "colorhist", "--show"])
    assert r.exit_code == 2 and "--show" in r.output
    r = runner.invoke(app, ["score-matches", str(tmp_path / "none.jsonl"), str(clip / "gt.json")])
    assert r.exit_code == 2 and "events file not found" in r.output


def test_match_sends_events_to_a_webhook_and_reports_the_delivery(tmp_path, app, clip):
    from test_sinks import Receiver

    rx = Receiver()
    try:
        r = CliRunner().invoke(app, pair(clip, "--set", f"outputs.webhook=[{rx.url}]", "--events",
                                         str(tmp_path / "ev.jsonl"), "--set", "outputs.metrics_port=0"))
    finally:
        rx.stop()
    assert r.exit_code == 0, r.output
    n = sum(1 for _ in open(tmp_path / "ev.jsonl"))
    assert len(rx.got) == n and f"{n} of {n} events delivered" in r.output
    assert "metrics: http://127.0.0.1:" in r.output
    for bad, msg in ((["--set", "outputs.webhook=[ftp://x/y]"], "expected an http"),
                     (["--set", "outputs.mqtt=[mqtt://host]"], "expected mqtt://"),
                     (["--set", "outputs.sink_queue=0"], "outputs.sink_queue must be an integer in")):
        r = CliRunner().invoke(app, ["match", "--ir", str(clip / "ir.mp4"), "--rgb", str(clip / "rgb.mp4"),
                                     "--model", "colorhist", "--no-status", *bad])
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, r.output


def test_site_round_trip_synth_match_score(tmp_path, app):
    """`synth-video --site` -> `match --cameras site-boxes.yaml` (4 cameras, one at half rate) ->
    `score-matches` on the site's ground truth."""
    runner = CliRunner()
    site = tmp_path / "site"
    r = runner.invoke(app, ["synth-video", "--site", "--out", str(site), "--ids", "3", "--seconds", "4", "--fps", "10",
                            "--size", "144x256", "--camera-fps", "ir1=5"])
    assert r.exit_code == 0, r.output
    assert (site / "site.yaml").is_file() and (site / "site-boxes.yaml").is_file()
    ev, summ = tmp_path / "site.jsonl", tmp_path / "summary.json"
    r = runner.invoke(app, ["match", "--cameras", str(site / "site-boxes.yaml"), "--model", "colorhist",
                            "--events", str(ev), "--set", f"outputs.summary_json={summ}",
                            "--set", "association.hysteresis=2", "--set", "site.same_threshold=0.9",
                            "--set", f"outputs.video={tmp_path / 'grid.mp4'}"])
    assert r.exit_code == 0, r.output
    import cv2

    cap = cv2.VideoCapture(str(tmp_path / "grid.mp4"))
    n_video = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n_video += 1
        assert frame.shape[0] == 22 + 2 * 240  # header + a 2x2 grid of 240-px tiles
    assert n_video == 40
    assert "site of 4 cameras" in r.output and "same-modality 0.900" in r.output
    summary = json.loads(summ.read_text())
    assert summary["steps"] == 40 and summary["ended"] == "all sources ended"
    used = {c: v["frames_used"] for c, v in summary["cameras"].items()}
    assert used == {"rgb0": 40, "rgb1": 40, "ir0": 40, "ir1": 20}
    lines = [json.loads(x) for x in ev.read_text().splitlines()]
    assert lines[0]["schema"] == "site/1" and lines[-1]["event"] == "end"
    assert {e["camera"] for e in lines if e["event"] == "sighting"} == {"rgb0", "rgb1", "ir0", "ir1"}
    r = runner.invoke(app, ["score-matches", str(ev), str(site), "--json", str(tmp_path / "score.json")])
    assert r.exit_code == 0, r.output
    assert "camera pairs" in r.output and "global IDF1" in r.output
    score = json.loads((tmp_path / "score.json").read_text())
    assert len(score["pairs"]) == 6 and 0.0 <= score["idf1"] <= 1.0
    # a cameras file without modalities cannot run as a site
    (tmp_path / "plain.yaml").write_text(f"cameras:\n  a: {site / 'rgb0.mp4'}\n")
    r = runner.invoke(app, ["match", "--cameras", str(tmp_path / "plain.yaml"), "--model", "colorhist"])
    assert r.exit_code == 2 and "no 'modality: rgb|ir'" in r.output
    r = runner.invoke(app, ["match", "--ir", "cam0", "--model", "colorhist"])
    assert r.exit_code == 2 and "both --ir and --rgb" in r.output


def test_matched_people_crops_feed_a_gallery(tmp_path, app, clip):
    """`match --set outputs.crops=DIR` keeps crops of matched people by global id; `gallery build DIR`
    indexes them (ids = global ids, modality from the folder)."""
    pytest.importorskip("faiss", reason="faiss-cpu (mvd-edge[gallery]) is not installed")
    from pathlib import Path

    crops = tmp_path / "crops"
    r = CliRunner().invoke(app, pair(clip, "--set", "association.hysteresis=3", "--set", f"outputs.crops={crops}"))
    assert r.exit_code == 0, r.output
    files = sorted(crops.rglob("*.jpg"))
    assert files and {f.parts[-3] for f in files} == {"ir", "rgb"}
    gids = {f.parent.name for f in files}
    assert all(g.isdigit() for g in gids)
    per_camera_gid: dict[tuple[str, str], list[int]] = {}
    for f in files:  # at most one crop per 10 frames per camera and person
        per_camera_gid.setdefault((f.parts[-3], f.parent.name), []).append(int(f.stem.split("_f")[1]))
    assert all(min((b - a for a, b in zip(v, v[1:])), default=10) >= 10 for v in per_camera_gid.values())
    engine = Path(__file__).parent / "data" / "edge" / "tiny.onnx"
    r = CliRunner().invoke(app, ["gallery", "build", str(crops), "--model", str(engine), "--out", str(tmp_path / "g"),
                                 "--index", "flat"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "g" / "gallery.json").read_text())
    assert meta["count"] == len(files) and {str(i) for i in meta["ids"]} == gids


def test_a_box_file_of_another_video_is_warned_about(tmp_path, app, clip):
    far = tmp_path / "far.mot.txt"
    far.write_text("".join(f"{k},1,10,10,30,60,1\n" for k in range(5000, 5010)))
    r = CliRunner().invoke(app, pair(clip, "--set", f"detector.ir_boxes={far}"))  # the last --set wins
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "the ir boxes file" in text and "no boxes for any of the 20 frames" in text and "5000-5009" in text
    assert "the rgb boxes file" not in text


def test_match_has_at_most_15_options(app):
    import typer

    cmd = typer.main.get_command(app).commands["match"]
    names = [p.opts[0] for p in cmd.get_params(cmd.make_context("match", ["--help"], resilient_parsing=True))]
    assert "--set" in names and "--config" in names and "--print-config" in names and "--help" in names
    assert len(names) <= 15, names


@pytest.mark.parametrize("old, new", [
    (["--threshold", "0.6"], "`--threshold` is now `--set association.threshold=0.6`"),
    (["--hysteresis=3"], "`--hysteresis` is now `--set association.hysteresis=3`"),
    (["--no-fast-pairing"], "`--no-fast-pairing` is now `--set association.fast_pairing=false`"),
    (["--embed-every", "2"], "`--embed-every` is now `--set crop.embed_every=2`"),
    (["--track-split", "0"], "`--track-split` is now `--set track.split=0`"),
    (["--same-threshold", "0.7"], "`--same-threshold` is now `--set site.same_threshold=0.7`"),
    (["--ir-boxes", "ir.txt"], "`--ir-boxes` is now `--set detector.ir_boxes=ir.txt`"),
    (["--retrack"], "`--retrack` is now `--set detector.retrack=true`"),
    (["--queue-size", "4"], "`--queue-size` is now `--set sources.queue_size=4`"),
    (["--realtime"], "`--realtime` is now `--set sources.realtime=true`"),
    (["--save", "v.mp4"], "`--save` is now `--set outputs.video=v.mp4`"),
    (["--webhook", "http://h/x"], "`--webhook` is now `--set outputs.webhook=[http://h/x]`"),
    (["--device", "cpu"], "`--device` is now `--set device=cpu`"),
])
def test_an_old_match_option_fails_in_one_line_naming_its_new_spelling(app, old, new):
    r = CliRunner().invoke(app, ["match", "--ir", "cam0", "--rgb", "cam1", "--model", "colorhist", *old])
    assert r.exit_code == 2 and new in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output


def test_a_bad_setting_is_one_line_naming_the_key(app):
    base = ["match", "--ir", "cam0", "--rgb", "cam1", "--model", "colorhist"]
    r = CliRunner().invoke(app, [*base, "--set", "association.treshold=0.6"])
    assert r.exit_code == 2 and "unknown config key 'association.treshold'" in r.output, r.output
    r = CliRunner().invoke(app, [*base, "--set", "association.threshold=2"])
    assert r.exit_code == 2 and r.output.count("must be") == 1, r.output
    assert "association.threshold must be a finite number in [-1, 1], got 2.0" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*base, "--set", "association.threshold"])
    assert r.exit_code == 2 and "must look like key.path=value" in r.output, r.output


def test_every_matcher_setting_is_in_the_cli_reference():
    import dataclasses
    from pathlib import Path

    from mvd_edge.core.config import flatten
    from mvd_edge.match.config import MatcherConfig

    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    keys = flatten(dataclasses.asdict(MatcherConfig()))
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert missing == [], f"docs/cli.md's table of match settings lacks {missing}"
