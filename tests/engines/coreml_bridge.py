"""A stand-in for coremltools' native bridge (`coremltools.libcoremlpython`), for tests on Linux.

The Python layer of coremltools is the real one (installed 9.0): `CompiledMLModel`, `compile_model`,
`_verify_optimization_hint_input`, `MLModel._check_predict_data` / `_update_float16_multiarray_input_to_float32`
all run. Only the native `_MLModelProxy` is replaced, by a class that does what the bridge's sources do
(coremltools 9.0 `coremlpython/CoreMLPython.mm`, `CoreMLPythonArray.mm`, `CoreMLPythonUtils.mm`):

- `_MLModelProxy(path, compute_units_name, function_name, hints_dict, asset)`: pybind11 signature
  (str, str, str, dict, object); an unknown compute-unit name or a model that does not load raises
  RuntimeError; a non-`.mlmodelc` path is compiled first.
- `predict(dict, state)`: every array must be int32, float32 or float64 (`PybindCompatibleArray
  dataTypeOf` throws "Unsupported array type" otherwise), of the declared shape; float16 outputs come
  back as float32 (`Utils::convertValueToPython`); int32 stay int32.
- `compileModel(path)` (static): compiles into a fresh temporary folder and returns its path.

A fake model is a folder with `metadata.json` (what Core ML's compiler writes) and `fake.json` (what
the model computes, `tests.pipeline.fakes._run`; `{"load_error": "..."}` makes loading fail).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.pipeline.fakes import _run as run_fake

_DTYPE_NAMES = {"float16": "Float16", "float32": "Float32", "float64": "Double", "int32": "Int32"}
_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


def write_model_folder(path: Path, inputs, outputs, fake: dict | None = None) -> Path:
    """A compiled-model (or fake package) folder with a metadata.json and the fake's description."""
    path.mkdir(parents=True, exist_ok=True)

    def schema(spec):
        return {"name": spec.name, "type": "MultiArray", "dataType": _DTYPE_NAMES[np.dtype(spec.dtype).name],
                "shape": "[" + ", ".join(str(d) for d in spec.shape) + "]", "hasShapeFlexibility": "0"}

    (path / "metadata.json").write_text(json.dumps([{"inputSchema": [schema(s) for s in inputs],
                                                    "outputSchema": [schema(s) for s in outputs]}]))
    (path / "fake.json").write_text(json.dumps(fake if fake is not None else {"kind": "double"}))
    return path


def _declared(path: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    meta = json.loads((path / "metadata.json").read_text())[0]

    def shape(text: str) -> tuple[int, ...]:
        return tuple(int(d) for d in text.strip("[]").split(",") if d.strip())

    inputs = {s["name"]: (s["dataType"], shape(s["shape"])) for s in meta["inputSchema"]}
    outputs = {s["name"]: s["dataType"] for s in meta["outputSchema"]}
    return inputs, outputs


def _bridge_type(array: np.ndarray) -> str:
    """`PybindCompatibleArray dataTypeOf` (macOS 15 SDK build): kind + itemsize -> MLMultiArray type."""
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "i" and size == 4:
        return "Int32"
    if kind == "f" and size == 4:
        return "Float32"
    if kind in ("f", "d") and size == 8:
        return "Double"
    raise RuntimeError(f"Unsupported array type: {kind} with itemsize = {size}")


class FakeMLModelProxy:
    """`coremltools.libcoremlpython._MLModelProxy` as CoreMLPython.mm implements it (minus Core ML)."""

    log: list[tuple[Any, ...]] = []  # every construction / prediction / compile, for assertions

    def __init__(self, url: str, compute_units: str, function_name: str, hints: dict, asset: object = None) -> None:
        for name, value, kind in (("url", url, str), ("computeUnits", compute_units, str),
                                  ("functionName", function_name, str), ("optimizationHints", hints, dict)):
            if not isinstance(value, kind):  # pybind11 refuses the call
                raise TypeError(f"__init__(): incompatible constructor arguments ({name}={value!r})")
        if compute_units not in _UNITS:
            raise RuntimeError(f"Invalid compute unit {compute_units}")
        path = Path(url)
        if path.suffix != ".mlmodelc":
            path = Path(self.compileModel(url))
        fake = json.loads((path / "fake.json").read_text())
        if "load_error" in fake:
            raise RuntimeError(f"Error in declaring network: {fake['load_error']}")
        self.path = path
        self.fake = fake
        self.inputs, self.outputs = _declared(path)
        FakeMLModelProxy.log.append(("load", str(path), compute_units, function_name, dict(hints)))

    def predict(self, data: dict, state: object = None) -> dict[str, np.ndarray]:
        converted = {}
        for name, value in data.items():
            if name not in self.inputs:
                raise RuntimeError(f"Feature {name} is not an input of the model")
            array = np.asarray(value)
            _bridge_type(array)  # what the bridge can wrap at all
            declared_type, shape = self.inputs[name]
            if tuple(array.shape) != shape:
                raise RuntimeError(f"MultiArray shape {tuple(array.shape)} does not match the shape {shape} "
                                   f"specified in the model description for {name}")
            # Core ML converts an accepted MLMultiArray to the declared input type.
            converted[name] = array.astype({"Float16": np.float16, "Float32": np.float32, "Double": np.float64,
                                            "Int32": np.int32}[declared_type])
        missing = sorted(set(self.inputs) - set(converted))
        if missing:
            raise RuntimeError(f"Required input feature not passed to neural network: {missing[0]}")
        FakeMLModelProxy.log.append(("predict", str(self.path), {k: v.dtype.name for k, v in data.items()}))
        if self.fake.get("kind") == "double":
            outputs = {name: converted[next(iter(converted))] * 2 for name in self.outputs}
        else:
            outputs = run_fake(self.fake, converted)
        result = {}
        for name, value in outputs.items():
            value = np.asarray(value).astype({"Float16": np.float16, "Float32": np.float32, "Double": np.float64,
                                              "Int32": np.int32}[self.outputs[name]])
            # featuresToDict: Float16 multiarrays are converted to Float32 before they reach numpy.
            result[name] = value.astype(np.float32) if value.dtype == np.float16 else value
        return result

    @staticmethod
    def compileModel(url: str) -> str:
        source = Path(url)
        destination = Path(tempfile.mkdtemp()) / f"{source.stem}.mlmodelc"
        shutil.copytree(source, destination)
        FakeMLModelProxy.log.append(("compileModel", url))
        return str(destination)

    @staticmethod
    def maximum_supported_specification_version() -> int:
        return 9


def install(monkeypatch, *, macos: tuple[int, ...] = (15, 1)):
    """Make the installed coremltools use the fake bridge on a Mac of version `macos`; returns the module."""
    import coremltools
    import coremltools.models._compiled_model as compiled_model
    import coremltools.models.model as model
    import coremltools.models.utils as utils

    bridge = types.ModuleType("coremltools.libcoremlpython")
    bridge._MLModelProxy = FakeMLModelProxy
    monkeypatch.setitem(sys.modules, "coremltools.libcoremlpython", bridge)
    monkeypatch.setattr(coremltools, "libcoremlpython", bridge, raising=False)
    monkeypatch.setattr(compiled_model, "_MLModelProxy", FakeMLModelProxy)
    for module in (compiled_model, model, utils):
        monkeypatch.setattr(module, "_macos_version", lambda: macos)
    FakeMLModelProxy.log = []
    return coremltools
