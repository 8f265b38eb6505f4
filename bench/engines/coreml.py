"""The Core ML engine: models run by Apple's Core ML framework through coremltools (macOS only).

- `.mlmodelc` (compiled) loads with `coremltools.models.CompiledMLModel(path, compute_units)`.
- `.mlpackage` is compiled first, as its own timed step (`compile()`, via
  `coremltools.models.utils.compile_model`), then loaded as a compiled model; loading an
  `.mlpackage` directly with `coremltools.models.MLModel(path, compute_units=...)` also works (it
  compiles inside the load).
- The first prediction (Core ML's device specialization, minutes for an SDXL UNet on the Neural
  Engine) is the pipeline's `first_predict/<part>` span, separate from the load.
- `compute_plan()` summarizes `MLComputePlan` (macOS 14.4+): ops and estimated cost per device.

Off macOS (or without coremltools' native bindings) the engine is unavailable and `compile` /
`load` raise `EngineUnavailableError` saying why; `describe` still reads a model's interface.
"""

from __future__ import annotations

import importlib
import platform
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.engines.base import COREML_COMPUTE_UNITS, TensorSpec
from bench.engines.compute_plan import ComputePlanSummary, summarize
from bench.errors import (
    BenchError,
    EngineUnavailableError,
    InputError,
    ModelFormatError,
)

#: Options `load` accepts (the pipeline's `engine_options`).
LOAD_OPTIONS = ("optimization_hints", "function_name", "compute_plan")


class CoreMLModel:
    """A loaded Core ML model behind the engine protocol."""

    def __init__(
        self,
        path: Path,
        handle: Any,
        input_specs: tuple[TensorSpec, ...],
        output_specs: tuple[TensorSpec, ...],
        compute_unit: str,
        *,
        owned_compiled_path: Path | None = None,
    ) -> None:
        self.path = path
        self.input_specs = input_specs
        self.output_specs = output_specs
        self.compute_unit = compute_unit
        self.compute_plan: ComputePlanSummary | None = None
        self._handle = handle
        self._owned_compiled_path = owned_compiled_path

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._handle is None:
            raise InputError(f"{self.path}: predict after close")
        expected = {s.name for s in self.input_specs}
        if set(inputs) != expected:
            raise InputError(
                f"{self.path}: inputs {sorted(inputs)} do not match the model's {sorted(expected)}"
            )
        # coremltools copies the dict's arrays into MLMultiArrays (fp16 arrays go in as fp32).
        outputs = self._handle.predict({name: np.ascontiguousarray(value) for name, value in inputs.items()})
        return {name: np.asarray(value) for name, value in outputs.items()}

    def close(self) -> None:
        """Drop the Core ML model (the framework frees it) and any compiled copy the engine made."""
        self._handle = None
        if self._owned_compiled_path is not None:
            shutil.rmtree(self._owned_compiled_path, ignore_errors=True)
            self._owned_compiled_path = None


class CoreMLEngine:
    """Engine protocol over coremltools; `coremltools` and the OS name can be injected for tests."""

    name = "coreml"
    compute_units = COREML_COMPUTE_UNITS
    separate_compile = True

    def __init__(
        self,
        *,
        coremltools: ModuleType | None = None,
        system: str | None = None,
        compiled_dir: str | Path | None = None,
    ) -> None:
        self._ct = coremltools
        self._system = system
        self._compiled_dir = Path(compiled_dir) if compiled_dir is not None else None
        self._compiled: set[Path] = set()

    # ------------------------------------------------------------------ availability

    def _coremltools(self) -> ModuleType:
        if self._ct is None:
            import coremltools  # slow to import; only the Core ML engine needs it at run time

            self._ct = coremltools
        return self._ct

    def unavailable_reason(self) -> str | None:
        """Why Core ML cannot run here, or None when it can."""
        system = self._system or platform.system()
        if system != "Darwin":
            return (
                f"the Core ML framework runs only on macOS; this machine runs {system}. "
                "Use engine 'reference' (or 'auto') here"
            )
        try:
            ct = self._coremltools()
        except ImportError as error:
            return f"coremltools is not importable ({error})"
        if not _has_native_bindings(ct):
            return "coremltools has no native Core ML bindings (libcoremlpython); install a macOS wheel of coremltools"
        return None

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def _require(self) -> ModuleType:
        reason = self.unavailable_reason()
        if reason is not None:
            raise EngineUnavailableError(f"engine 'coreml' is unavailable: {reason}")
        return self._coremltools()

    def _compute_unit(self, ct: ModuleType, compute_unit: str) -> Any:
        if compute_unit not in self.compute_units:
            raise BenchError(
                f"engine 'coreml' has no compute unit {compute_unit!r}; expected one of {', '.join(self.compute_units)}"
            )
        return ct.ComputeUnit[compute_unit]

    # ------------------------------------------------------------------ engine protocol

    def describe(self, path: str | Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """A model's input and output specs without loading it (works on any OS)."""
        from bench.engines.model_io import (
            read_model_io,  # metadata.json / protobuf reader
        )

        io = read_model_io(path)
        return tuple(io.inputs.values()), tuple(io.outputs.values())

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        """Compile an `.mlpackage` / `.mlmodel` to a fresh `.mlmodelc`; a `.mlmodelc` is returned as is.

        Core ML compiles independently of the compute unit; specialization for a device happens at
        load and first prediction.
        """
        path = Path(path)
        ct = self._require()
        self._compute_unit(ct, compute_unit)
        if path.suffix == ".mlmodelc":
            return path
        if path.suffix not in (".mlpackage", ".mlmodel"):
            raise ModelFormatError(f"{path}: expected an .mlpackage, .mlmodel or .mlmodelc")
        if not path.exists():
            raise ModelFormatError(f"model {path} does not exist")
        folder = self._compiled_dir or Path(tempfile.gettempdir()) / "bench-coreml-compiled"
        folder.mkdir(parents=True, exist_ok=True)
        destination = folder / f"{path.stem}-{uuid.uuid4().hex[:12]}.mlmodelc"
        try:
            compiled = Path(ct.models.utils.compile_model(str(path), str(destination)))
        except Exception as error:
            raise ModelFormatError(f"{path}: Core ML could not compile it ({error})") from error
        self._compiled.add(compiled)
        return compiled

    def load(self, path: str | Path, compute_unit: str, **options: object) -> CoreMLModel:
        """Load a model for `compute_unit` (`CPU_ONLY`, `CPU_AND_GPU`, `CPU_AND_NE`, `ALL`).

        Options: `optimization_hints` (coremltools' dict), `function_name` (multifunction models),
        `compute_plan=True` to attach `model.compute_plan` (a `ComputePlanSummary`).
        """
        path = Path(path)
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise BenchError(f"engine 'coreml': unknown load option(s) {', '.join(unknown)}; known: {', '.join(LOAD_OPTIONS)}")
        ct = self._require()
        units = self._compute_unit(ct, compute_unit)
        if not path.exists():
            raise ModelFormatError(f"model {path} does not exist")
        kwargs: dict[str, Any] = {"compute_units": units}
        for key in ("optimization_hints", "function_name"):
            if options.get(key) is not None:
                kwargs[key] = options[key]
        inputs, outputs = self.describe(path)
        try:
            if path.suffix == ".mlmodelc":
                handle = ct.models.CompiledMLModel(str(path), **kwargs)
                compiled_path = path
            else:
                handle = ct.models.MLModel(str(path), **kwargs)
                # MLModel only warns when the framework cannot load the model; make that an error.
                if getattr(handle, "__proxy__", None) is None:
                    cause = getattr(handle, "_framework_error", None)
                    raise ModelFormatError(f"{path}: Core ML could not load it ({cause or 'no framework proxy'})")
                compiled_path = Path(handle.get_compiled_model_path())
        except BenchError:
            raise
        except Exception as error:
            raise ModelFormatError(f"{path}: Core ML could not load it for {compute_unit} ({error})") from error
        owned = path if path in self._compiled else None
        self._compiled.discard(path)
        model = CoreMLModel(path, handle, inputs, outputs, compute_unit, owned_compiled_path=owned)
        if options.get("compute_plan"):
            model.compute_plan = self.compute_plan(compiled_path, compute_unit)
        return model

    def compute_plan(self, compiled_path: str | Path, compute_unit: str) -> ComputePlanSummary:
        """The `MLComputePlan` summary of a compiled model, or one that says why there is none."""
        compiled_path = Path(compiled_path)
        reason = self.unavailable_reason()
        if reason is not None:
            return ComputePlanSummary(str(compiled_path), compute_unit, unavailable=reason)
        ct = self._coremltools()
        plan_module = getattr(getattr(ct, "models", None), "compute_plan", None)
        plan_class = getattr(plan_module, "MLComputePlan", None)
        if plan_class is None:
            return ComputePlanSummary(
                str(compiled_path), compute_unit, unavailable="this coremltools has no MLComputePlan (needs >= 8.1)"
            )
        if compiled_path.suffix != ".mlmodelc":
            return ComputePlanSummary(str(compiled_path), compute_unit, unavailable="a compute plan needs a compiled .mlmodelc")
        try:
            plan = plan_class.load_from_path(str(compiled_path), compute_units=self._compute_unit(ct, compute_unit))
        except Exception as error:  # noqa: BLE001 - the framework API exists from macOS 14.4 only
            return ComputePlanSummary(
                str(compiled_path), compute_unit, unavailable=f"MLComputePlan failed (needs macOS 14.4+): {error}"
            )
        return summarize(plan, path=str(compiled_path), compute_unit=compute_unit)


def _has_native_bindings(ct: ModuleType) -> bool:
    """True when coremltools was built with its Core ML bridge (`libcoremlpython`, macOS wheels only)."""
    bindings = getattr(ct, "libcoremlpython", None)
    if bindings is None:
        try:
            bindings = importlib.import_module(f"{ct.__name__}.libcoremlpython")
        except Exception:  # noqa: BLE001 - ImportError off macOS; anything else: a broken bridge
            return False
    return hasattr(bindings, "_MLModelProxy")


#: The engine `bench.engines.get_engine("coreml")` returns.
ENGINE = CoreMLEngine()

__all__ = ["ENGINE", "LOAD_OPTIONS", "CoreMLEngine", "CoreMLModel"]
