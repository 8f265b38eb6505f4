"""The engine protocol every backend implements (docs/architecture.md, "Contracts").

An engine turns model files into `Model` objects that take and return dicts of numpy arrays.
The pipeline only ever talks to this protocol, so the same code drives Core ML on macOS and
the numpy reference engine anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

#: Core ML compute units, as coremltools names them (ct.ComputeUnit.<name>).
COREML_COMPUTE_UNITS: tuple[str, ...] = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
#: The single compute unit of the reference engine.
REFERENCE_COMPUTE_UNIT = "REFERENCE"


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


@runtime_checkable
class Model(Protocol):
    """A loaded model: fixed input / output specs and a `predict` over numpy arrays."""

    path: Path
    input_specs: tuple[TensorSpec, ...]
    output_specs: tuple[TensorSpec, ...]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """A backend that loads model files for one of its compute units."""

    name: str
    compute_units: tuple[str, ...]
    #: True where compiling a model is a step of its own, timed as `compile/<part>`.
    separate_compile: bool

    def is_available(self) -> bool: ...

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        """Return the path to load; engines without a separate compile step return `path`."""
        ...

    def load(self, path: str | Path, compute_unit: str, **options: object) -> Model: ...
