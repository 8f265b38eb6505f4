"""`ReferenceEngine`: the numpy reference engine behind the engine protocol (docs/architecture.md, "Contracts")."""

from __future__ import annotations

from pathlib import Path

from bench.engines.base import REFERENCE_COMPUTE_UNIT
from bench.engines.reference.model import ReferenceModel, load
from bench.errors import BenchError

#: Options `ReferenceEngine.load` accepts (passed on to `reference.load`); `function_name` is the
#: Core ML engine's spelling of `function`, accepted so the same engine options work for both.
LOAD_OPTIONS: tuple[str, ...] = ("precision", "on_nonfinite", "function", "function_name")


class ReferenceEngine:
    """Runs Core ML model files (.mlpackage, .mlmodelc) in numpy, on any OS."""

    name = "reference"
    compute_units: tuple[str, ...] = (REFERENCE_COMPUTE_UNIT,)
    separate_compile = False

    def is_available(self) -> bool:
        return True

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        """Nothing to compile: the model files are read at load."""
        self._check_unit(compute_unit)
        return Path(path)

    def load(self, path: str | Path, compute_unit: str = REFERENCE_COMPUTE_UNIT, **options: object) -> ReferenceModel:
        self._check_unit(compute_unit)
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise BenchError(
                f"reference engine: unknown load option(s) {', '.join(unknown)}; expected {', '.join(LOAD_OPTIONS)}"
            )
        if "function_name" in options:
            options["function"] = options.pop("function_name")
        return load(path, **options)  # type: ignore[arg-type]

    def _check_unit(self, compute_unit: str) -> None:
        if compute_unit not in self.compute_units:
            raise BenchError(
                f"reference engine: unknown compute unit {compute_unit!r}; expected {REFERENCE_COMPUTE_UNIT}"
            )

    def __repr__(self) -> str:
        return "ReferenceEngine()"


ENGINE = ReferenceEngine()
