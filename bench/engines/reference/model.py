"""`load` and `ReferenceModel`: a loaded ML Program behind the engine protocol's `Model`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.engines.base import TensorSpec
from bench.engines.reference import threads
from bench.engines.reference.graph import Function, Program, TensorType
from bench.engines.reference.interpreter import CompiledFunction
from bench.engines.reference.precision import (
    FLOAT_DTYPES,
    NumericsReport,
    check_on_nonfinite,
    check_precision,
    default_on_nonfinite,
    to_compute,
    to_output,
    warn_nonfinite,
)
from bench.engines.reference.profile import OpProfile, ProfileResult
from bench.engines.reference.weights import release_mapped_pages
from bench.errors import BenchError, InputError, ModelFormatError


def read_program(path: str | Path) -> Program:
    """Read an `.mlpackage` or `.mlmodelc` folder into a `Program` (nothing is executed)."""
    path = Path(path)
    try:
        return _read_program(path)
    except BenchError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError) as error:
        # A file that parses but holds inconsistent content: say where, not a traceback.
        raise ModelFormatError(f"{path}: cannot read the model ({type(error).__name__}: {error})") from error


def _read_program(path: Path) -> Program:
    if not path.exists():
        raise ModelFormatError(f"{path}: no such model file or folder; expected an .mlpackage or .mlmodelc folder")
    if (path / "Manifest.json").is_file() or path.suffix == ".mlpackage":
        from bench.engines.reference.proto_loader import read_mlpackage

        return read_mlpackage(path)
    if (path / "model.mil").is_file() or path.suffix == ".mlmodelc":
        from bench.engines.reference.mlmodelc import read_mlmodelc

        return read_mlmodelc(path)
    raise ModelFormatError(
        f"{path}: not a Core ML model folder; expected an .mlpackage (with Manifest.json) "
        "or a compiled .mlmodelc (with model.mil)"
    )


def load(
    path: str | Path,
    precision: str = "fp32",
    *,
    on_nonfinite: str | None = None,
    function: str | None = None,
) -> ReferenceModel:
    """Load a model for the reference engine.

    precision: `fp32` (float32 everywhere) or `fp16` (every op output rounded through float16).
    on_nonfinite: `warn`, `raise` or `ignore` an op output holding inf / nan (default: `warn` in
    fp16, `ignore` in fp32); `model.last_numerics` reports the first such op of the last predict.
    function: which function of a multifunction model to run (default: the model's default, `main`).
    """
    check_precision(precision)
    return ReferenceModel(Path(path), read_program(path), precision, on_nonfinite=on_nonfinite, function=function)


def _spec_dtype(vtype: TensorType, precision: str | None = None) -> np.dtype:
    if vtype.dtype in FLOAT_DTYPES:
        if precision is None:
            return np.dtype(np.float16) if vtype.dtype == "fp16" else np.dtype(np.float32)
        return np.dtype(np.float16) if precision == "fp16" else np.dtype(np.float32)
    return vtype.numpy_dtype


def _const_arrays(program: Program):
    """Every array a program's ops carry as an attribute (const values: views of weight.bin)."""
    for function in program.functions.values():
        for op in function.operations:
            for value in op.attributes.values():
                if isinstance(value, np.ndarray):
                    yield value


def _spec_shape(vtype: TensorType) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in vtype.shape)


class ReferenceModel:
    """A model loaded by the reference engine; satisfies `bench.engines.base.Model`.

    Input specs carry the dtypes the program declares (float16 for an fp16 input); output specs
    carry what `predict` returns: float32 in fp32 mode, float16 in fp16 mode, integers unchanged.
    Unknown dimensions are -1.
    """

    def __init__(
        self,
        path: Path,
        program: Program,
        precision: str = "fp32",
        *,
        on_nonfinite: str | None = None,
        function: str | None = None,
    ):
        self.path = Path(path)
        self.program = program
        self.precision = check_precision(precision)
        self.on_nonfinite = check_on_nonfinite(on_nonfinite or default_on_nonfinite(precision))
        name = function or program.metadata.get("defaultFunctionName") or "main"
        if name not in program.functions:
            raise BenchError(
                f"{self.path}: no function {name!r} in the model; it has {', '.join(sorted(program.functions))}"
            )
        self.function: Function = program.functions[name]
        threads.refresh_threads()  # the first load configures BLAS and the kernel pool (threads.py)
        started = time.perf_counter()
        self._compiled = CompiledFunction(self.function, self.path, self.precision, self.on_nonfinite)
        self.compile_seconds = time.perf_counter() - started
        release_mapped_pages(_const_arrays(program))
        types = self.function.value_types()
        self.input_specs: tuple[TensorSpec, ...] = tuple(
            TensorSpec(v.name, _spec_shape(v.type), _spec_dtype(v.type)) for v in self.function.inputs
        )
        self.output_specs: tuple[TensorSpec, ...] = tuple(
            TensorSpec(n, _spec_shape(types[n]), _spec_dtype(types[n], self.precision)) for n in self.function.outputs
        )
        self._input_types = {v.name: v.type for v in self.function.inputs}

    # -- protocol ------------------------------------------------------------------------------
    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on a dict of numpy arrays; returns a dict of numpy arrays."""
        feeds = self._validate(inputs)
        threads.refresh_threads()
        outputs = self._compiled.run(feeds, consume=True)  # empties `feeds`: inputs die after last use
        self._after_run()
        return {name: to_output(value, self.precision) for name, value in outputs.items()}

    def profile(self, inputs: Mapping[str, np.ndarray], repeats: int = 1) -> ProfileResult:
        """Run the model `repeats` times and time every op (median per op over the repeats)."""
        if repeats < 1:
            raise BenchError(f"repeats must be at least 1, got {repeats}")
        runs: list[list[OpProfile]] = []
        walls: list[float] = []
        for _ in range(repeats):
            timings: list[OpProfile] = []
            feeds = self._validate(inputs)
            threads.refresh_threads()
            started = time.perf_counter()
            self._compiled.run(feeds, timings, consume=True)
            walls.append(time.perf_counter() - started)
            self._after_run()
            runs.append(timings)
        return ProfileResult.from_runs(self.path, self.precision, runs, walls)

    def close(self) -> None:
        """Release the compiled program (weights included)."""
        self._compiled = None  # type: ignore[assignment]

    # -- extras ----------------------------------------------------------------------------------
    @property
    def last_numerics(self) -> NumericsReport | None:
        """Inf / nan report of the last predict (None when numerics are not checked)."""
        return self._compiled.last_numerics if self._compiled is not None else None

    @property
    def op_count(self) -> int:
        """Ops executed per predict (consts and constexpr ops run once, at load)."""
        return len(self._compiled.steps)

    def __repr__(self) -> str:
        return f"ReferenceModel({str(self.path)!r}, precision={self.precision!r}, ops={self.op_count})"

    def _after_run(self) -> None:
        report = self._compiled.last_numerics
        if report is not None and not report.ok and self.on_nonfinite == "warn":
            warn_nonfinite(report)

    def _validate(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._compiled is None:
            raise BenchError(f"{self.path}: the model was closed")
        if not isinstance(inputs, Mapping):
            raise InputError(f"{self.path}: predict takes a dict of input name -> array, got {type(inputs).__name__}")
        expected = [spec.name for spec in self.input_specs]
        missing = [name for name in expected if name not in inputs]
        extra = [name for name in inputs if name not in self._input_types]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"unknown input(s) {', '.join(map(repr, extra))}")
            raise InputError(
                f"{self.path}: {'; '.join(parts)}; the model takes "
                + ", ".join(spec.describe() for spec in self.input_specs)
            )
        feeds: dict[str, np.ndarray] = {}
        for spec in self.input_specs:
            feeds[spec.name] = self._validate_one(spec, inputs[spec.name])
        return feeds

    def _validate_one(self, spec: TensorSpec, value: object) -> np.ndarray:
        vtype = self._input_types[spec.name]
        where = f"{self.path}: input {spec.name!r}"
        try:
            array = np.asarray(value)
        except Exception as error:  # noqa: BLE001  (any object can be passed; say which input)
            raise InputError(f"{where}: cannot be read as an array ({error}); expected {spec.describe()}") from None
        if len(array.shape) != len(spec.shape) or any(d >= 0 and d != a for d, a in zip(spec.shape, array.shape)):
            raise InputError(f"{where} has shape {tuple(array.shape)}, expected {spec.describe()}")
        kind = array.dtype.kind
        if vtype.dtype in FLOAT_DTYPES:
            if kind != "f":
                raise InputError(f"{where} has dtype {array.dtype}, expected a float array ({spec.describe()})")
            return to_compute(array, self.precision, declared_fp16=vtype.dtype == "fp16")
        if vtype.dtype == "bool":
            if kind != "b":
                raise InputError(f"{where} has dtype {array.dtype}, expected bool ({spec.describe()})")
            return array
        if kind not in "iu":
            raise InputError(f"{where} has dtype {array.dtype}, expected {np.dtype(spec.dtype).name} ({spec.describe()})")
        if array.dtype != spec.dtype:
            info = np.iinfo(spec.dtype)
            if array.size and (array.min() < info.min or array.max() > info.max):
                raise InputError(
                    f"{where} has {array.dtype} values in [{array.min()}, {array.max()}] that do not fit "
                    f"{np.dtype(spec.dtype).name} ({spec.describe()})"
                )
            array = array.astype(spec.dtype)
        return array
