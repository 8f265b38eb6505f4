"""The Core ML engine: models run by Apple's Core ML framework through coremltools (macOS only).

Checked against the coremltools 8.2, 8.3 and 9.0 sources (`models/utils.py` compile_model,
`models/_compiled_model.py` CompiledMLModel, `models/model.py` optimization-hint checks and
predict, `coremlpython/CoreMLPythonArray.mm` / `CoreMLPythonUtils.mm` for the dtypes the bridge takes):

- An `.mlpackage` / `.mlmodel` is compiled (`coremltools.models.utils.compile_model(path, dest)`,
  which takes a path from 8.2 on) into a stable cache keyed by the package's content hash
  (`bench.engines.coreml_cache`), as its own timed step `compile/<part>`; later runs reuse it.
- Every model loads with `coremltools.models.CompiledMLModel(path, compute_units, function_name,
  optimization_hints)`. Core ML's device specialization (minutes for an SDXL UNet on the Neural
  Engine, on a cache miss) runs inside that constructor, so it is part of `load/<part>`; the first
  prediction after it is just that (`first_predict/<part>`).
- `import coremltools` happens in `prepare()`, before any span; a compute plan is read in a span
  of its own (`compute_plan/<part>`) when the `compute_plan` load option asks for it.
- Inputs go in as the dtypes the bridge accepts (int32, float32, float64; a float16 input is fed as
  float32) and outputs are declared as they come back (float16 outputs arrive as float32).

Off macOS (or without coremltools' native bindings, or with coremltools < 8.2) the engine is
unavailable and `compile` / `load` raise `EngineUnavailableError` saying why; `describe` still
reads a model's interface.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.engines import annotate
from bench.engines.base import COREML_COMPUTE_UNITS, TensorSpec
from bench.engines.compute_plan import ComputePlanSummary, summarize
from bench.engines.coreml_cache import CompiledModelCache, LoadLedger
from bench.engines.coreml_hints import coreml_hints, parse_version
from bench.errors import BenchError, EngineUnavailableError, InputError, ModelFormatError

#: Options `load` accepts (the pipeline's `engine_options`).
LOAD_OPTIONS = ("optimization_hints", "function_name", "compute_plan")
#: compile_model takes a package path from 8.2 (8.0 / 8.1 take only a protobuf spec).
MIN_COREMLTOOLS = (8, 2)
#: numpy dtypes Core ML's Python bridge builds MLMultiArrays from (PybindCompatibleArray.dataTypeOf).
BRIDGE_INPUT_DTYPES = (np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.float64))


def bridge_input_spec(spec: TensorSpec) -> TensorSpec:
    """The spec an input is fed with: float16 -> float32 (coremltools converts it anyway), else as is."""
    dtype = np.dtype(spec.dtype)
    if dtype == np.float16:
        return TensorSpec(spec.name, spec.shape, np.dtype(np.float32))
    if dtype not in BRIDGE_INPUT_DTYPES:
        raise ModelFormatError(
            f"input {spec.describe()}: Core ML's Python bridge takes int32, float32 or float64 arrays only"
        )
    return spec


def returned_output_spec(spec: TensorSpec) -> TensorSpec:
    """The spec an output comes back with: float16 multiarrays arrive as float32 numpy arrays."""
    if np.dtype(spec.dtype) == np.float16:
        return TensorSpec(spec.name, spec.shape, np.dtype(np.float32))
    return spec


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
        engine: CoreMLEngine | None = None,
        wants_compute_plan: bool = False,
    ) -> None:
        self.path = path
        self.input_specs = input_specs
        self.output_specs = output_specs
        self.compute_unit = compute_unit
        self.compute_plan: ComputePlanSummary | None = None
        self.wants_compute_plan = wants_compute_plan
        self._handle = handle
        self._engine = engine

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._handle is None:
            raise InputError(f"{self.path}: predict after close")
        expected = {s.name for s in self.input_specs}
        if set(inputs) != expected:
            raise InputError(f"{self.path}: inputs {sorted(inputs)} do not match the model's {sorted(expected)}")
        feed = {s.name: np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in self.input_specs}
        outputs = self._handle.predict(feed)
        return {name: np.asarray(value) for name, value in outputs.items()}

    def load_compute_plan(self) -> ComputePlanSummary:
        """Read Core ML's compute plan (its own blocking load); the pipeline times it as `compute_plan/<part>`."""
        engine = self._engine or ENGINE
        self.compute_plan = engine.compute_plan(self.path, self.compute_unit)
        return self.compute_plan

    def close(self) -> None:
        """Drop the Core ML model (the framework frees it); the compiled cache entry stays for later runs."""
        self._handle = None


class CoreMLEngine:
    """Engine protocol over coremltools; the module, OS name and version can be injected for tests."""

    name = "coreml"
    compute_units = COREML_COMPUTE_UNITS
    separate_compile = True

    def __init__(
        self,
        *,
        coremltools: ModuleType | None = None,
        system: str | None = None,
        macos_version: str | None = None,
        os_build: str | None = None,
        cache: CompiledModelCache | None = None,
    ) -> None:
        self._ct = coremltools
        self._system = system
        self._macos_version = macos_version
        self._os_build = os_build
        self._cache = cache

    # ------------------------------------------------------------------ availability

    @property
    def cache(self) -> CompiledModelCache:
        if self._cache is None:
            self._cache = CompiledModelCache()
        return self._cache

    def _coremltools(self) -> ModuleType:
        if self._ct is None:
            import coremltools  # slow to import; `prepare()` does it before any timed span

            self._ct = coremltools
        return self._ct

    def macos_version(self) -> str:
        return self._macos_version if self._macos_version is not None else platform.mac_ver()[0]

    def os_build(self) -> str:
        if self._os_build is None:
            self._os_build = _macos_build() or platform.version()
        return self._os_build

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
        version = parse_version(getattr(ct, "__version__", "0"))
        if version < MIN_COREMLTOOLS:
            return f"coremltools {getattr(ct, '__version__', '?')} is too old: compiling a package needs >= 8.2"
        if not _has_native_bindings(ct):
            return "coremltools has no native Core ML bindings (libcoremlpython); install a macOS wheel of coremltools"
        return None

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def prepare(self) -> None:
        """Import coremltools now (seconds), so no timed span pays for it; raises when unavailable."""
        self._require()

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
        """A model's input and output specs as Core ML's Python bridge takes and returns them (any OS)."""
        from bench.engines.model_io import read_model_io

        io = read_model_io(path)
        inputs = tuple(bridge_input_spec(s) for s in io.inputs.values())
        return inputs, tuple(returned_output_spec(s) for s in io.outputs.values())

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        """The compiled `.mlmodelc` of an `.mlpackage` / `.mlmodel` (from the cache when it holds the
        same bytes); a `.mlmodelc` is returned as is. Compiling does not depend on the compute unit."""
        path = Path(path)
        ct = self._require()
        self._compute_unit(ct, compute_unit)
        if path.suffix == ".mlmodelc":
            return path
        if path.suffix not in (".mlpackage", ".mlmodel"):
            raise ModelFormatError(f"{path}: expected an .mlpackage, .mlmodel or .mlmodelc")
        if not path.exists():
            raise ModelFormatError(f"model {path} does not exist")

        def compile_into(destination: Path) -> None:
            try:
                ct.models.utils.compile_model(str(path), str(destination))
            except Exception as error:
                raise ModelFormatError(f"{path}: Core ML could not compile it ({error})") from error

        result = self.cache.compile(path, compile_into)
        annotate.span_value("compile_cache_hit", 1.0 if result.cache_hit else 0.0, "bool")
        return result.path

    def load(self, path: str | Path, compute_unit: str, **options: object) -> CoreMLModel:
        """Load a model for `compute_unit` (`CPU_ONLY`, `CPU_AND_GPU`, `CPU_AND_NE`, `ALL`).

        Options: `optimization_hints` (strings or coremltools enums: reshapeFrequency,
        specializationStrategy; allowLowPrecisionAccumulationOnGPU with coremltools 9), `function_name`
        (multifunction models), `compute_plan=True` (the pipeline then reads the plan in its own span).
        An `.mlpackage` is compiled through the cache first (inside this call: use `compile` to time it apart).
        """
        path = Path(path)
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise BenchError(f"engine 'coreml': unknown load option(s) {', '.join(unknown)}; known: {', '.join(LOAD_OPTIONS)}")
        ct = self._require()
        units = self._compute_unit(ct, compute_unit)
        if not path.exists():
            raise ModelFormatError(f"model {path} does not exist")
        hints = coreml_hints(ct, options.get("optimization_hints"), os_name="macOS", os_version=self.macos_version())  # type: ignore[arg-type]
        function_name = options.get("function_name")
        if function_name is not None and not isinstance(function_name, str):
            raise BenchError(f"engine 'coreml': function_name must be a string, got {function_name!r}")
        if path.suffix != ".mlmodelc":
            path = self.compile(path, compute_unit)
        inputs, outputs = self.describe(path)
        cached = self.cache.owns(path)
        ledger = LoadLedger(path, self.cache.root)
        annotate.span_value("load_cache_warm", 1.0 if ledger.seen(compute_unit, self.os_build()) else 0.0, "bool")
        marker = self.cache.begin_load(path) if cached else None
        try:
            handle = ct.models.CompiledMLModel(
                str(path), compute_units=units, function_name=function_name, optimization_hints=hints
            )
        except Exception as error:
            if cached:  # a compiled copy that does not load is not kept for the next run
                self.cache.evict(path)
            raise ModelFormatError(f"{path}: Core ML could not load it for {compute_unit} ({error})") from error
        finally:
            if marker is not None:
                self.cache.end_load(marker)
        ledger.record(compute_unit, self.os_build())
        return CoreMLModel(path, handle, inputs, outputs, compute_unit, engine=self,
                           wants_compute_plan=bool(options.get("compute_plan")))  # fmt: skip

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


def _macos_build() -> str | None:
    """`sw_vers -buildVersion` (e.g. 24B83): Core ML drops its specialization cache on OS updates."""
    import subprocess

    try:
        done = subprocess.run(["sw_vers", "-buildVersion"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


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

__all__ = ["ENGINE", "LOAD_OPTIONS", "CoreMLEngine", "CoreMLModel", "bridge_input_spec", "returned_output_spec"]
