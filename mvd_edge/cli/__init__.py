"""The ``mvd-edge`` command line (Typer): the root ``app`` and ``main()`` (the console script).

The commands live in sub-apps by area (:mod:`.train`, :mod:`.deploy`, :mod:`.serve`, :mod:`.match`,
:mod:`.doctor`, :mod:`.gallery`; each module's docstring lists its commands), merged into the root app
as top-level commands (``mvd-edge train``, not ``mvd-edge train-group train``); :mod:`._common` holds
the consoles, the ``friendly`` error decorator and the option parsers.

Heavy modules (torch, onnx, onnxruntime, OpenCV, scipy, matplotlib) are imported inside the
commands, so ``mvd-edge --help`` and ``mvd-edge CMD --help`` import none of them. User errors
(:class:`mvd_edge.core.errors.MvdEdgeError`) end with a one-line message and exit code 2; set
``MVD_EDGE_DEBUG=1`` to see their traceback. Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import typer

from mvd_edge.cli import deploy, doctor, gallery, match, serve, train

__all__ = ["COMMANDS", "GROUPS", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MVD cross-modal (visible/infrared) person re-identification: train, evaluate, deploy.")

COMMANDS = ("synth", "train", "distill", "eval", "export", "fp16", "int8", "build-engine", "verify", "calibrate-threshold",
            "profile", "bench", "export-triton", "demo",
            "match", "synth-video", "train-detector", "score-matches", "doctor")
"""Every command, in the order ``mvd-edge --help`` lists them (the pipeline's order: data, train, deploy, match)."""

GROUPS = ("gallery",)
"""Command groups (``mvd-edge gallery build ...``), listed after the commands."""


def _merge(*subs: typer.Typer) -> None:
    """Register the sub-apps' commands on the root app itself, in :data:`COMMANDS` order.

    Copying the command records (rather than ``add_typer``, whose unnamed merge needs a recent
    Typer) keeps every command top-level with its own name, options and help on any Typer >= 0.12.
    """
    commands = [c for sub in subs for c in sub.registered_commands]
    groups = [g for sub in subs for g in sub.registered_groups]
    names = [c.name for c in commands]
    if sorted(names) != sorted(COMMANDS):
        raise RuntimeError(f"CLI commands {names} do not match COMMANDS {list(COMMANDS)}")  # a developer's mistake
    if sorted(g.name for g in groups) != sorted(GROUPS):
        raise RuntimeError(f"CLI groups {[g.name for g in groups]} do not match GROUPS {list(GROUPS)}")
    app.registered_commands.extend(sorted(commands, key=lambda c: COMMANDS.index(c.name)))
    app.registered_groups.extend(groups)


_merge(train.app, deploy.app, serve.app, match.app, doctor.app, gallery.app)


def main() -> None:
    """Console-script entry point (``mvd-edge = "mvd_edge.cli:main"``)."""
    app()
