"""``mvd-edge doctor``: the machine's backends and precisions, and the command that fixes each missing piece.

The probes are in :mod:`mvd_edge.doctor`; this module only prints them (a rich table, or JSON).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mvd_edge.cli._common import console

app = typer.Typer()

_STYLE = {"ok": "green", "missing": "yellow", "broken": "bold red", "none": "dim"}


@app.command("doctor")
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """What this machine has for each backend and precision (TensorRT, CUDA, GPU, ONNX Runtime, ...), and the
    command that fixes each missing piece. Always exits 0: it is a report."""
    from mvd_edge.doctor import report

    rep = report()
    if as_json:
        typer.echo(json.dumps(rep, indent=1, default=str))
        return
    table = Table(title=f"mvd-edge doctor (Python {rep['python']}, {rep['platform']}"
                        f"{', Jetson' if rep['jetson'] else ''})")
    for col in ("component", "status", "version", "details", "fix"):
        table.add_column(col, overflow="fold")
    for c in rep["components"]:
        style = _STYLE.get(c["status"], "")
        table.add_row(c["name"], f"[{style}]{c['status']}[/]", escape(c["version"]), escape(c["details"]),
                      escape(c["fix"]))
    console.print(table)
    caps = Table(title="backends x precisions on this machine")
    for col in ("backend", "fp32", "fp16", "int8", "missing", "fix / note"):
        caps.add_column(col, overflow="fold")
    for b in rep["backends"]:
        cells = ["[green]yes[/]" if b[p] else "[yellow]no[/]" for p in ("fp32", "fp16", "int8")]
        caps.add_row(b["backend"], *cells, escape(", ".join(b["missing"])), escape(b["fix"] or b["note"]))
    console.print(caps)
