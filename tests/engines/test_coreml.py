"""The Core ML engine up to the coremltools boundary, with a fake coremltools module.

Core ML itself cannot run here (Linux): these tests check what the engine asks of coremltools
(which class, path type, compute-unit enum, compile destination), how it turns the answers into
the engine protocol, and how the pipeline times compile / load / first prediction through it.
"""

from __future__ import annotations

import enum
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.engines import get_engine
from bench.engines.compute_plan import summarize
from bench.engines.coreml import CoreMLEngine
from bench.errors import (
    BenchError,
    EngineUnavailableError,
    InputError,
    ModelFormatError,
)
from bench.measure.recorder import TimingRecorder
from bench.pipeline import GenerationRequest, SDXLPipeline
from tests.pipeline.fakes import _run as run_fake
from tests.pipeline.fakes import make_model_set, specs_for

ComputeUnit = enum.Enum("ComputeUnit", ["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"])
_DTYPE_NAMES = {"float16": "Float16", "float32": "Float32", "int32": "Int32"}


def write_mlmodelc(path: Path, inputs, outputs, fake: dict | None = None) -> Path:
    """A compiled-model folder with a metadata.json (and the fake's description, if any)."""
    path.mkdir(parents=True, exist_ok=True)

    def schema(spec):
        return {"name": spec.name, "type": "MultiArray", "dataType": _DTYPE_NAMES[np.dtype(spec.dtype).name],
                "shape": "[" + ", ".join(str(d) for d in spec.shape) + "]", "hasShapeFlexibility": "0"}

    (path / "metadata.json").write_text(json.dumps([{"inputSchema": [schema(s) for s in inputs],
                                                    "outputSchema": [schema(s) for s in outputs]}]))
    if fake is not None:
        (path / "fake.json").write_text(json.dumps(fake))
    return path


class FakeCoreML:
    """Stands in for the `coremltools` module: records what the engine calls."""

    def __init__(self, *, native: bool = True, plan=None, plan_error: Exception | None = None, proxy: bool = True):
        self.__name__ = "fake_coremltools"
        self.calls: list[tuple] = []
        self.ComputeUnit = ComputeUnit
        if native:
            self.libcoremlpython = SimpleNamespace(_MLModelProxy=object)
        fake = self

        class CompiledMLModel:
            def __init__(self, path, compute_units=ComputeUnit.ALL, function_name=None, optimization_hints=None):
                assert isinstance(path, str) and isinstance(compute_units, ComputeUnit)
                fake.calls.append(("CompiledMLModel", path, compute_units.name, optimization_hints))
                self.path = Path(path)
                description = self.path / "fake.json"
                self.desc = json.loads(description.read_text()) if description.exists() else None

            def predict(self, data):
                assert isinstance(data, dict)
                fake.calls.append(("predict", self.path.name))
                if self.desc is not None:
                    return run_fake(self.desc, data)
                return {"y": np.asarray(data["x"], np.float32) * 2}

        class MLModel:
            def __init__(self, path, compute_units=ComputeUnit.ALL, **kwargs):
                assert isinstance(path, str) and isinstance(compute_units, ComputeUnit)
                fake.calls.append(("MLModel", path, compute_units.name))
                self.__proxy__ = object() if proxy else None
                self._framework_error = None if proxy else RuntimeError("Error compiling model: bad op")
                self.compiled = Path(path).with_suffix(".mlmodelc")

            def get_compiled_model_path(self):
                return str(self.compiled)

            def predict(self, data):
                return {"y": np.asarray(data["x"], np.float32) * 3}

        def compile_model(source, destination):
            assert isinstance(source, str) and isinstance(destination, str)
            fake.calls.append(("compile_model", source, destination))
            shutil.copytree(source, destination)  # the test packages already hold a metadata.json
            return destination

        class MLComputePlan:
            @staticmethod
            def load_from_path(path, compute_units=ComputeUnit.ALL):
                fake.calls.append(("MLComputePlan.load_from_path", path, compute_units.name))
                if plan_error is not None:
                    raise plan_error
                return plan

        self.models = SimpleNamespace(
            CompiledMLModel=CompiledMLModel,
            MLModel=MLModel,
            utils=SimpleNamespace(compile_model=compile_model),
            compute_plan=SimpleNamespace(MLComputePlan=MLComputePlan),
        )


def _spec(name, shape, dtype):
    from bench.engines.base import TensorSpec

    return TensorSpec(name, shape, np.dtype(dtype))


XY = ((_spec("x", (1, 4), np.float32),), (_spec("y", (1, 4), np.float32),))


@pytest.fixture
def compiled(tmp_path) -> Path:
    return write_mlmodelc(tmp_path / "Model.mlmodelc", *XY)


@pytest.fixture
def package(tmp_path) -> Path:
    return write_mlmodelc(tmp_path / "model.mlpackage", *XY)  # the fake compiler copies the folder


def _engine(tmp_path, **fake_options) -> tuple[CoreMLEngine, FakeCoreML]:
    fake = FakeCoreML(**fake_options)
    return CoreMLEngine(coremltools=fake, system="Darwin", compiled_dir=tmp_path / "compiled"), fake


# ---------------------------------------------------------------- availability

def test_unavailable_off_macos_with_a_reason(compiled):
    engine = get_engine("coreml")
    assert engine.name == "coreml" and engine.separate_compile
    if engine.is_available():
        pytest.skip("Core ML runs here")
    assert "macOS" in engine.unavailable_reason()
    with pytest.raises(EngineUnavailableError, match="macOS.*reference"):
        engine.load(compiled, "CPU_AND_NE")
    with pytest.raises(EngineUnavailableError):
        engine.compile(compiled, "ALL")
    inputs, outputs = engine.describe(compiled)  # reading the interface needs no Core ML
    assert [s.name for s in inputs] == ["x"] and [s.name for s in outputs] == ["y"]
    plan = engine.compute_plan(compiled, "ALL")
    assert not plan.available and "macOS" in plan.unavailable


def test_unavailable_on_macos_without_native_bindings(tmp_path, compiled):
    engine, _ = _engine(tmp_path, native=False)
    assert not engine.is_available()
    assert "libcoremlpython" in engine.unavailable_reason()
    with pytest.raises(EngineUnavailableError, match="libcoremlpython"):
        engine.load(compiled, "ALL")


# ---------------------------------------------------------------- loading and predicting

@pytest.mark.parametrize("unit", ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"])
def test_loads_mlmodelc_with_compiled_mlmodel_and_the_compute_unit(tmp_path, compiled, unit):
    engine, fake = _engine(tmp_path)
    assert engine.is_available()
    model = engine.load(compiled, unit, optimization_hints={"reshapeFrequency": "Infrequent"})
    assert fake.calls == [("CompiledMLModel", str(compiled), unit, {"reshapeFrequency": "Infrequent"})]
    assert [s.describe() for s in model.input_specs] == ["x: float32[1, 4]"]
    out = model.predict({"x": np.ones((1, 4), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((1, 4), 2.0))
    with pytest.raises(InputError, match="do not match"):
        model.predict({"z": np.ones((1, 4), np.float32)})
    model.close()
    with pytest.raises(InputError, match="after close"):
        model.predict({"x": np.ones((1, 4), np.float32)})


def test_compiles_mlpackage_then_loads_the_compiled_copy_and_removes_it_on_close(tmp_path, package):
    engine, fake = _engine(tmp_path)
    compiled = engine.compile(package, "CPU_AND_NE")
    assert compiled.suffix == ".mlmodelc" and compiled.parent == tmp_path / "compiled"
    assert fake.calls[0] == ("compile_model", str(package), str(compiled))
    model = engine.load(compiled, "CPU_AND_NE")
    assert fake.calls[1][:3] == ("CompiledMLModel", str(compiled), "CPU_AND_NE")
    assert compiled.exists()
    model.close()
    assert not compiled.exists()
    assert engine.compile(package, "ALL") != compiled  # a fresh destination each time


def test_compile_of_a_compiled_model_is_a_no_op(tmp_path, compiled):
    engine, fake = _engine(tmp_path)
    assert engine.compile(compiled, "ALL") == compiled
    assert fake.calls == []
    engine.load(compiled, "ALL").close()
    assert compiled.exists()  # the engine never deletes models it did not compile


def test_loads_mlpackage_directly_with_mlmodel(tmp_path, package):
    engine, fake = _engine(tmp_path)
    model = engine.load(package, "CPU_AND_GPU")
    assert fake.calls == [("MLModel", str(package), "CPU_AND_GPU")]
    np.testing.assert_array_equal(model.predict({"x": np.ones((1, 4), np.float32)})["y"], np.full((1, 4), 3.0))


def test_mlmodel_that_the_framework_cannot_load_is_an_error(tmp_path, package):
    engine, _ = _engine(tmp_path, proxy=False)
    with pytest.raises(ModelFormatError, match="could not load.*bad op"):
        engine.load(package, "ALL")


def test_bad_arguments_are_clear_errors(tmp_path, compiled):
    engine, _ = _engine(tmp_path)
    with pytest.raises(BenchError, match="no compute unit 'NPU'"):
        engine.load(compiled, "NPU")
    with pytest.raises(BenchError, match="unknown load option.*turbo"):
        engine.load(compiled, "ALL", turbo=True)
    with pytest.raises(ModelFormatError, match="does not exist"):
        engine.load(tmp_path / "missing.mlmodelc", "ALL")
    with pytest.raises(ModelFormatError, match="expected an .mlpackage"):
        engine.compile(tmp_path / "model.onnx", "ALL")


# ---------------------------------------------------------------- compute plan

class MLCPUComputeDevice:
    pass


class MLGPUComputeDevice:
    pass


class MLNeuralEngineComputeDevice:
    pass


def _plan():
    def op(name, blocks=()):
        return SimpleNamespace(operator_name=name, blocks=list(blocks))

    inner = SimpleNamespace(operations=[op("add"), op("const")])
    ops = [op("const"), op("conv"), op("conv"), op("softmax"), op("cond", blocks=[inner]), op("gather")]
    devices = {"conv": MLNeuralEngineComputeDevice(), "softmax": MLGPUComputeDevice(),
               "cond": MLCPUComputeDevice(), "add": MLNeuralEngineComputeDevice()}
    weights = {"conv": 0.4, "softmax": 0.1, "cond": 0.05, "add": 0.05}

    class Plan:
        model_structure = SimpleNamespace(program=SimpleNamespace(
            functions={"main": SimpleNamespace(block=SimpleNamespace(operations=ops))}))

        def get_compute_device_usage_for_mlprogram_operation(self, operation):
            device = devices.get(operation.operator_name)
            return None if device is None else SimpleNamespace(preferred_compute_device=device,
                                                               supported_compute_devices=[device])

        def get_estimated_cost_for_mlprogram_operation(self, operation):
            weight = weights.get(operation.operator_name)
            return None if weight is None else SimpleNamespace(weight=weight)

    return Plan()


def test_compute_plan_summary_counts_ops_and_cost_per_device():
    summary = summarize(_plan(), path="Unet.mlmodelc", compute_unit="CPU_AND_NE")
    assert summary.available and summary.operations == 6 and summary.const_operations == 2
    ne, gpu, cpu, unknown = (summary.share(d) for d in ("NE", "GPU", "CPU", "unknown"))
    assert (ne.operations, gpu.operations, cpu.operations, unknown.operations) == (3, 1, 1, 1)
    assert ne.op_share == pytest.approx(0.5)
    assert ne.cost_share == pytest.approx(0.85 / 1.0) and gpu.cost_share == pytest.approx(0.1)
    assert unknown.cost == 0.0
    assert summary.op_types["conv"] == {"NE": 2}
    metrics = summary.as_metrics()
    assert metrics["plan_op_share/NE"] == pytest.approx(0.5) and metrics["plan_cost_share/GPU"] == pytest.approx(0.1)


def test_compute_plan_through_the_engine_and_attached_at_load(tmp_path, compiled):
    engine, fake = _engine(tmp_path, plan=_plan())
    model = engine.load(compiled, "CPU_AND_NE", compute_plan=True)
    assert ("MLComputePlan.load_from_path", str(compiled), "CPU_AND_NE") in fake.calls
    assert model.compute_plan.share("NE").operations == 3


def test_compute_plan_unavailable_when_the_os_lacks_it(tmp_path, compiled, package):
    engine, _ = _engine(tmp_path, plan_error=RuntimeError("MLComputePlan requires macOS 14.4"))
    plan = engine.compute_plan(compiled, "ALL")
    assert not plan.available and "14.4" in plan.unavailable and plan.as_metrics() == {}
    assert "compiled" in engine.compute_plan(package, "ALL").unavailable


# ---------------------------------------------------------------- the pipeline over this engine

def test_pipeline_times_compile_load_and_first_prediction_through_coreml(tmp_path):
    fake_set = make_model_set(tmp_path / "fakes")
    files = dict(fake_set.files)
    for part in ("text_encoder", "text_encoder_2", "unet", "vae_decoder"):
        desc = json.loads(Path(files[part]).read_text())
        suffix = ".mlpackage" if part == "unet" else ".mlmodelc"
        files[part] = write_mlmodelc(tmp_path / "coreml" / f"{part}{suffix}", *specs_for(desc), fake=desc)
    model_set = type(fake_set)(**{**fake_set.__dict__, "files": files})
    engine, fake = _engine(tmp_path)
    recorder = TimingRecorder()
    pipe = SDXLPipeline(model_set, engine, {"default": "CPU_AND_NE", "vae_decoder": "CPU_AND_GPU"}, recorder=recorder)
    request = GenerationRequest(prompt="a cat", steps=3, seed=1)
    pipe.load(pipe.parts_for(request))
    assert recorder.stages()[:3] == ["compile/text_encoder", "load/text_encoder", "first_predict/text_encoder"]
    assert [c[0] for c in fake.calls].count("compile_model") == 1  # only the .mlpackage is compiled
    loads = {Path(c[1]).stem.split("-")[0]: c[2] for c in fake.calls if c[0] == "CompiledMLModel"}
    assert loads == {"text_encoder": "CPU_AND_NE", "text_encoder_2": "CPU_AND_NE", "unet": "CPU_AND_NE",
                     "vae_decoder": "CPU_AND_GPU"}
    result = pipe.generate(request)
    assert result.image.shape == (64, 64, 3) and result.unet_calls == 3
    pipe.close()
    assert not any((tmp_path / "compiled").iterdir())  # the compiled copy went with the model
