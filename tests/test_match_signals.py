"""`mvd-edge match` stopped by SIGTERM (docker stop, systemd) or SIGINT finishes like a completed run --
annotated video closed and playable, final events written -- and exits 143 / 130."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

from mvd_edge.core.signals import Terminated, interrupt_exit_code, sigterm_as_interrupt


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from mvd_edge.synth.video import write_synth_video

    return write_synth_video(tmp_path_factory.mktemp("clip"), n_ids=3, seconds=8.0, seed=1, fps=10, size=(180, 320),
                             ir_modality="rgb")


@pytest.fixture(autouse=True)
def ctrl_c_as_in_a_terminal():
    """Ctrl-C as a terminal delivers it: a shell that starts a job in the background (no job control)
    makes it ignore SIGINT, and Python then never installs its KeyboardInterrupt handler; these tests
    are about a foreground run, so they set SIGINT's default handler here and in the child."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _default_sigint() -> None:  # Popen preexec_fn: the child starts with SIGINT's default disposition
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _mvd_edge() -> list[str]:
    exe = shutil.which("mvd-edge")
    return [exe] if exe else [sys.executable, "-m", "mvd_edge"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, code, reason", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                               (signal.SIGINT, 130, "interrupted (SIGINT)")])
def test_a_signal_ends_match_cleanly_with_its_exit_code(tmp_path, clip, sig, code, reason):
    events, save = tmp_path / "ev.jsonl", tmp_path / "out.mp4"
    cmd = _mvd_edge() + ["match", "--ir", clip["videos"]["ir"], "--rgb", clip["videos"]["rgb"], "--model", "colorhist",
                         "--set", f"detector.ir_boxes={clip['mot']['ir']}",
                         "--set", f"detector.rgb_boxes={clip['mot']['rgb']}", "--set", "sources.realtime=true",
                         "--events", str(events), "--set", f"outputs.video={save}", "--no-status",
                         "--set", "association.hysteresis=2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until it is matching (the file plays for 8 s)
        if events.exists() and sum(1 for _ in events.open()) > 20:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert evs[-1]["event"] == "end" and evs[-1]["summary"]["ended"] == reason
    assert 0 < evs[-1]["frames"] < 80  # stopped early, not at the end of the file
    starts = {e["global_id"] for e in evs if e["event"] == "pair_start"}
    ends = {e["global_id"] for e in evs if e["event"] == "pair_end"}
    assert starts and starts == ends  # every pair held at the signal was closed (reason shutdown)
    cap = cv2.VideoCapture(str(save))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == evs[-1]["frames"]  # the annotated video is complete and playable


def test_sigterm_as_interrupt_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before
    assert interrupt_exit_code(Terminated()) == 143 and interrupt_exit_code(KeyboardInterrupt()) == 130


def test_an_interrupt_inside_a_deferred_block_takes_effect_when_it_ends():
    """A matcher step is whole: SIGINT / SIGTERM in the middle of it (between its events, its video frame
    and its count) is raised right after it, through the handlers in place."""
    from mvd_edge.core.signals import Terminated, interrupts_deferred, sigterm_as_interrupt

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("after the signal")  # the block goes on
    assert done == ["after the signal"]
    with sigterm_as_interrupt(), pytest.raises(Terminated):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("whole")
    assert done[-1] == "whole" and signal.getsignal(signal.SIGINT) is signal.default_int_handler
