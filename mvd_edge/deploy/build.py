"""``build-engine``'s pipeline: a checkpoint or an ONNX graph -> [export] -> [FP16 / INT8 graph] -> engine.

:func:`plan_build` says what will be written (checked before any work), :func:`run_build` does it.
The intermediate graphs keep the names ``export``, ``fp16`` and ``int8`` give them
(:mod:`mvd_edge.deploy.formats`) and are written beside the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mvd_edge.core.errors import UsageError, require
from mvd_edge.deploy import formats


@dataclass(frozen=True)
class BuildPlan:
    model: Path  # the checkpoint or ONNX graph given
    backend: str
    final: Path  # the graph the engine is built from
    out: Path  # the engine
    steps: tuple[tuple[str, Path], ...] = ()  # (export | fp16 | int8, the graph it writes), in order
    outputs: dict[str, Path] = field(default_factory=dict)  # every file written, by what it is

    @property
    def flavour(self) -> str:
        return formats.engine_format(self.backend).int8_flavours[0]


def plan_build(model: Path, backend: str, precision: str | None, out: Path | None = None,
               recipe: str | None = None, calib: Path | None = None) -> BuildPlan:
    """The steps from ``model`` to an engine for ``backend`` at ``precision`` (None: the graph's own)."""
    from mvd_edge.runtime.engine import graph_facts

    checkpoint = formats.for_path(model) == formats.by_name("checkpoint")
    if not model.is_file():
        raise FileNotFoundError(f"{'checkpoint' if checkpoint else 'ONNX file'} not found: {model}")
    if checkpoint:
        precision = precision or "fp32"
    else:
        if recipe is not None:
            raise UsageError("--recipe applies to a checkpoint (.pt); an ONNX graph has its recipe already")
        have = graph_facts(model)["meta"].precision if precision is not None else None
        if precision is not None and precision != have and have != "fp32":
            raise UsageError(f"{model} is already a {have} graph; --precision {precision} starts from the FP32 "
                             "export (`mvd-edge export`) or the checkpoint")
        if precision == have:
            precision = None  # the graph is what was asked for: build it as it is
    folder = out.parent if out is not None else model.parent
    stem = model.name.removesuffix(".onnx").removesuffix(".pt")
    fp32 = formats.graph_path(folder, stem, "fp32") if checkpoint else model
    steps: list[tuple[str, Path]] = [("export", fp32)] if checkpoint else []
    outputs: dict[str, Path] = {"the exported FP32 graph": fp32} if checkpoint else {}
    final = fp32
    if precision in ("fp16", "int8"):
        flavour = formats.engine_format(backend).int8_flavours[0] if precision == "int8" else None
        final = formats.graph_path(folder, stem, precision, flavour)
        steps.append((precision, final))
        outputs[f"the {flavour} INT8 graph" if flavour else "the FP16 graph"] = final
    if precision == "int8":
        outputs["the INT8 report"] = folder / f"{stem}.int8-report.json"
        manifest_copy = folder / f"{stem}.calib-manifest.json"
        if calib is None or manifest_copy.resolve() != calib.resolve():  # re-using it as --calib is fine
            outputs["the calibration manifest"] = manifest_copy
    out = out or formats.engine_path(final, backend)
    outputs.update({"--out": out, "the sidecar": Path(f"{out}.json")})
    return BuildPlan(model, backend, final, out, tuple(steps), outputs)


def calibration_manifest(calib: Path, dataset: str | None, n: int, seed: int, kind: str | None = None,
                         boxes: Path | None = None):
    """``--calib`` as a calibration manifest: a data set root (with ``--calib-dataset``), a folder of
    images, a manifest JSON (from ``mvd-edge int8``) or a video (``boxes``: its MOT boxes). ``kind``
    (folder, manifest or video; ``int8`` has an option for each) says which instead of the path."""
    from mvd_edge.quant import manifest as mf

    if dataset is not None:
        return mf.from_dataset(dataset, calib, n=n, seed=seed)
    kind = kind or ("folder" if calib.is_dir() else "manifest" if calib.suffix.lower() == ".json" else "video")
    if kind == "folder":
        return mf.from_folder(calib, n=n, seed=seed)
    if kind == "manifest":
        return mf.load_manifest(calib)
    return mf.from_video(calib, boxes=boxes, n=n, seed=seed)


def run_build(plan: BuildPlan, say: Callable[[str], None], recipe: str | None = None, calib: Path | None = None,
              calib_dataset: str | None = None, calib_n: int = 512, seed: int = 0, **engine_options) -> dict:
    """Run ``plan``'s steps, then build the engine (``engine_options`` go to
    :func:`mvd_edge.runtime.engine.build_engine`); ``say`` gets one progress line per step. Returns the sidecar."""
    total = len(plan.steps) + 1
    fp32 = plan.steps[0][1] if plan.steps and plan.steps[0][0] == "export" else plan.model
    for i, (what, path) in enumerate(plan.steps, 1):
        if what == "export":
            say(f"[{i}/{total}] export {plan.model} -> {path} (FP32, parity vs torch)")
            require("torch", "train")
            from mvd_edge.deploy.export import export_onnx

            rep = export_onnx(plan.model, path, recipe=recipe)
            if "max_abs_err" in rep["parity"]:
                say(f"      parity vs torch: max abs err {rep['parity']['max_abs_err']:.2e}")
            continue
        require("onnx", "quant")
        from mvd_edge.quant.api import quantize, to_fp16

        if what == "fp16":
            say(f"[{i}/{total}] fp16 {fp32} -> {path}")
            par = to_fp16(fp32, path)["parity"]
        else:
            man = calibration_manifest(calib, calib_dataset, calib_n, seed)  # type: ignore[arg-type]
            say(f"[{i}/{total}] int8 ({plan.flavour} flavour) {fp32} -> {path}: calibrating on {len(man)} crops")
            par = quantize(fp32, path.parent, man, flavours=[plan.flavour], seed=seed)["flavours"][plan.flavour]["parity"]
        say(f"      cosine vs FP32 on {par['inputs']}: mean {par['mean_cosine']:.5f}, min {par['min_cosine']:.5f}")
    say(f"[{total}/{total}] build {plan.backend} engine {plan.final} -> {plan.out}")
    from mvd_edge.runtime.engine import build_engine

    return build_engine(plan.final, plan.out, backend=plan.backend, **engine_options)
