"""The errors a user can cause, as opposed to bugs.

Every error meant for the person at the keyboard (bad input, a missing file, a missing optional
dependency, a device that is not there) derives from :class:`MvdEdgeError`. The CLI prints such
an error as one red line and exits with code 2; any other exception is a bug and keeps its
traceback. The concrete classes keep a builtin base too (``ValueError``, ``RuntimeError``,
``ImportError``), so code and tests that catch those still work.

torch-free and dependency-free: the CLI imports this module for ``--help``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "DeviceUnavailable",
    "MissingExtra",
    "MvdEdgeError",
    "TensorRTUnavailable",
    "UsageError",
    "require",
]


class MvdEdgeError(Exception):
    """A known user error: bad input, missing file, missing optional dependency; the CLI prints its message on one line."""


class UsageError(MvdEdgeError, ValueError):
    """A bad value given by the user (an option, a config entry, a file's contents): unknown recipe, bad list, ..."""


class OutputExists(MvdEdgeError, FileExistsError):
    """An output path holds something the command will not replace (another program's data, a file
    where a folder is needed)."""


class DeviceUnavailable(MvdEdgeError, RuntimeError):
    """Something the user asked for is not on this machine: a CUDA device, a GUI window for ``--show``."""


class MissingExtra(MvdEdgeError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


class TensorRTUnavailable(MissingExtra, RuntimeError):
    """TensorRT (or its Python plugin API) is not installed, too old or unusable; the message says how to fix it.

    The one class for both the engine builder (:mod:`mvd_edge.runtime.trt_compat`) and the
    fused-head plugin (:mod:`mvd_edge.kernels.trt_plugin`). It is an ``ImportError`` (a missing
    dependency) and, as the engine builder's error always was, a ``RuntimeError``.
    """


def require(module: str, extra: str) -> ModuleType:
    """``import module`` and return it, or raise :class:`MissingExtra` with the ``pip install`` hint for ``extra``.

    Only a missing module becomes ``MissingExtra``; an installed module that fails while importing
    is a real problem and propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if missing != module and not module.startswith(missing + "."):
            raise  # the module is there, one of *its* imports is missing: not ours to explain
        raise MissingExtra(f"{module} is not installed: pip install 'mvd-edge[{extra}]'") from exc
