"""Engines: backends that execute Core ML model files.

`get_engine("auto")` picks Core ML where the Core ML framework runs (macOS) and the numpy
reference engine everywhere else.
"""

from __future__ import annotations

import importlib
import platform

from bench.engines.base import (
    COREML_COMPUTE_UNITS,
    REFERENCE_COMPUTE_UNIT,
    Engine,
    Model,
    TensorSpec,
)
from bench.errors import BenchError

ENGINE_NAMES: tuple[str, ...] = ("auto", "coreml", "reference")

# Engine modules are imported lazily: coremltools is slow to import and Core ML only exists on macOS.
_ENGINE_MODULES = {"coreml": "bench.engines.coreml", "reference": "bench.engines.reference"}


def coreml_runs_here() -> bool:
    """True on macOS, where the Core ML framework can execute models."""
    return platform.system() == "Darwin"


def resolve_engine_name(name: str) -> str:
    """Map `auto` to the engine that fits this machine; validate other names."""
    if name == "auto":
        return "coreml" if coreml_runs_here() else "reference"
    if name not in _ENGINE_MODULES:
        raise BenchError(f"unknown engine {name!r}; expected one of {', '.join(ENGINE_NAMES)}")
    return name


def get_engine(name: str = "auto") -> Engine:
    """Return the engine object for `name` (`auto`, `coreml` or `reference`)."""
    module = importlib.import_module(_ENGINE_MODULES[resolve_engine_name(name)])
    return module.ENGINE


__all__ = [
    "COREML_COMPUTE_UNITS",
    "ENGINE_NAMES",
    "REFERENCE_COMPUTE_UNIT",
    "Engine",
    "Model",
    "TensorSpec",
    "coreml_runs_here",
    "get_engine",
    "resolve_engine_name",
]
