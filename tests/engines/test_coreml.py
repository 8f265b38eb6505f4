"""The Core ML engine against the real coremltools Python layer, with a fake native bridge.

Core ML itself cannot run here (Linux). The installed coremltools (9.0) runs for real: its
`CompiledMLModel` argument checks, `compile_model` (path handling, the `.mlmodelc` destination rule,
the move), `_verify_optimization_hint_input` (enum types, macOS >= 15) and predict's input
preparation. Only `libcoremlpython._MLModelProxy` is a fake (tests/engines/coreml_bridge.py), written
from the bridge's sources, so a call a Mac would refuse fails here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.engines import annotate, get_engine
from bench.engines.base import TensorSpec
from bench.engines.compute_plan import summarize
from bench.engines.coreml import CoreMLEngine
from bench.engines.coreml_cache import CompiledModelCache
from bench.errors import BenchError, EngineUnavailableError, InputError, ModelFormatError
from bench.hashing import HashCache
from bench.measure.recorder import TimingRecorder
from bench.measure.spans import MeasuringRecorder
from bench.pipeline import GenerationRequest, SDXLPipeline
from tests.engines import coreml_bridge
from tests.engines.coreml_bridge import FakeMLModelProxy, write_model_folder
from tests.pipeline.fakes import make_model_set, specs_for


def _spec(name, shape, dtype):
    return TensorSpec(name, shape, np.dtype(dtype))


XY = ((_spec("x", (1, 4), np.float32),), (_spec("y", (1, 4), np.float32),))


@pytest.fixture
def ct(monkeypatch):
    return coreml_bridge.install(monkeypatch)


@pytest.fixture
def compiled(tmp_path) -> Path:
    return write_model_folder(tmp_path / "Model.mlmodelc", *XY)


@pytest.fixture
def package(tmp_path) -> Path:
    return write_model_folder(tmp_path / "model.mlpackage", *XY)  # the fake compiler copies the folder


def _engine(tmp_path, ct, **options) -> CoreMLEngine:
    options.setdefault("macos_version", "15.1")
    options.setdefault("os_build", "24B83")
    cache = CompiledModelCache(tmp_path / "cache")
    return CoreMLEngine(coremltools=ct, system="Darwin", cache=cache, **options)


class Values:
    """Collects what the engine reports through bench.measure.annotate."""

    def __init__(self):
        self.values, self.timings = [], []

    def on_device_timing(self, timing):
        self.timings.append(timing)

    def on_span_value(self, value):
        self.values.append((value.metric, value.value))


@pytest.fixture
def reported():
    values = Values()
    previous = annotate.listen(values)
    yield values
    annotate.listen(previous)


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
    assert not engine.compute_plan(compiled, "ALL").available


def test_unavailable_on_macos_without_native_bindings(tmp_path, compiled):
    import types

    wheel = types.ModuleType("coremltools_without_bridge")  # like a wheel built without libcoremlpython
    wheel.__version__ = "9.0"
    engine = CoreMLEngine(coremltools=wheel, system="Darwin", cache=CompiledModelCache(tmp_path))
    assert "libcoremlpython" in engine.unavailable_reason()
    with pytest.raises(EngineUnavailableError, match="libcoremlpython"):
        engine.prepare()


def test_coremltools_older_than_8_2_is_refused(tmp_path, ct, monkeypatch):
    monkeypatch.setattr(ct, "__version__", "8.1")  # compile_model took only a spec before 8.2
    assert ">= 8.2" in _engine(tmp_path, ct).unavailable_reason()


# ---------------------------------------------------------------- loading and predicting

@pytest.mark.parametrize("unit", ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"])
def test_loads_mlmodelc_with_compiled_mlmodel_and_the_compute_unit(tmp_path, ct, compiled, unit):
    engine = _engine(tmp_path, ct)
    model = engine.load(compiled, unit)
    assert FakeMLModelProxy.log == [("load", str(compiled), unit, "", {})]
    out = model.predict({"x": np.ones((1, 4), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((1, 4), 2.0))
    with pytest.raises(InputError, match="do not match"):
        model.predict({"z": np.ones((1, 4), np.float32)})
    model.close()
    with pytest.raises(InputError, match="after close"):
        model.predict({"x": np.ones((1, 4), np.float32)})
    assert compiled.exists()  # the engine never deletes models it did not compile


def test_the_fake_bridge_refuses_what_the_real_one_refuses(tmp_path, ct, compiled):
    """The checks the engine relies on are really there: argument types, dtypes, shapes."""
    with pytest.raises(TypeError, match="path"):
        ct.models.CompiledMLModel(compiled)  # a Path, not a str: coremltools' own _init_check
    with pytest.raises(TypeError, match="compute_units"):
        ct.models.CompiledMLModel(str(compiled), "ALL")
    handle = ct.models.CompiledMLModel(str(compiled))
    with pytest.raises(RuntimeError, match="Unsupported array type"):
        handle.predict({"x": np.ones((1, 4), np.int64)})
    with pytest.raises(RuntimeError, match="shape"):
        handle.predict({"x": np.ones((4,), np.float32)})
    with pytest.raises(TypeError, match="dict"):
        handle.predict([np.ones((1, 4), np.float32)])


def test_inputs_are_fed_as_the_bridge_takes_them_and_outputs_declared_as_they_return(tmp_path, ct):
    inputs = (_spec("ids", (1, 4), np.int32), _spec("x", (1, 4), np.float16))
    outputs = (_spec("y", (1, 4), np.float16),)
    path = write_model_folder(tmp_path / "Half.mlmodelc", inputs, outputs)
    model = _engine(tmp_path, ct).load(path, "ALL")
    assert [s.describe() for s in model.input_specs] == ["ids: int32[1, 4]", "x: float32[1, 4]"]
    assert [s.describe() for s in model.output_specs] == ["y: float32[1, 4]"]
    out = model.predict({"ids": np.arange(4, dtype=np.int64).reshape(1, 4), "x": np.full((1, 4), 1.5, np.float16)})
    assert FakeMLModelProxy.log[-1][2] == {"ids": "int32", "x": "float32"}
    assert out["y"].dtype == np.float32 and out["y"].dtype == model.output_specs[0].dtype
    np.testing.assert_array_equal(out["y"], np.zeros((1, 4)) + 2 * np.arange(4))  # ids * 2 ("double" fake)


def test_an_input_type_the_bridge_cannot_take_is_a_load_error(tmp_path, ct):
    path = write_model_folder(tmp_path / "Bad.mlmodelc", (_spec("x", (1, 4), np.float32),), XY[1])
    meta = json.loads((path / "metadata.json").read_text())
    meta[0]["inputSchema"][0]["dataType"] = "Int8"
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="int8.*bridge"):
        _engine(tmp_path, ct).load(path, "ALL")


def test_bad_arguments_are_clear_errors(tmp_path, ct, compiled):
    engine = _engine(tmp_path, ct)
    with pytest.raises(BenchError, match="no compute unit 'NPU'"):
        engine.load(compiled, "NPU")
    with pytest.raises(BenchError, match="unknown load option.*turbo"):
        engine.load(compiled, "ALL", turbo=True)
    with pytest.raises(ModelFormatError, match="does not exist"):
        engine.load(tmp_path / "missing.mlmodelc", "ALL")
    with pytest.raises(ModelFormatError, match="expected an .mlpackage"):
        engine.compile(tmp_path / "model.onnx", "ALL")


# ---------------------------------------------------------------- the compiled-model cache

def test_compiles_a_package_once_into_the_cache_and_reuses_it_in_later_runs(tmp_path, ct, package, reported):
    first = _engine(tmp_path, ct)
    compiled = first.compile(package, "CPU_AND_NE")
    assert compiled.parent == tmp_path / "cache" and compiled.suffix == ".mlmodelc"
    from bench.hashing import model_file_hashes

    manifest_hash = model_file_hashes({"unet": package}, HashCache(tmp_path / "other.json"))["unet"]
    assert compiled.name == f"model-{manifest_hash[:16]}.mlmodelc"  # keyed by the manifest's model hash
    assert [entry[0] for entry in FakeMLModelProxy.log] == ["compileModel"]
    first.load(compiled, "CPU_AND_NE").close()
    assert compiled.exists()  # kept for the next run
    later = _engine(tmp_path, ct)  # a later run: a new engine in a new worker
    assert later.compile(package, "CPU_AND_NE") == compiled
    later.load(compiled, "CPU_AND_NE")
    later.load(compiled, "CPU_ONLY")
    assert [entry[0] for entry in FakeMLModelProxy.log].count("compileModel") == 1
    assert reported.values == [("compile_cache_hit", 0.0), ("load_cache_warm", 0.0),
                               ("compile_cache_hit", 1.0), ("load_cache_warm", 1.0),
                               ("load_cache_warm", 0.0)]  # CPU_ONLY was never loaded before  # fmt: skip


def test_changed_package_bytes_compile_to_a_new_entry(tmp_path, ct, package):
    engine = _engine(tmp_path, ct)
    first = engine.compile(package, "ALL")
    (package / "weights.bin").write_bytes(b"new weights")
    assert engine.compile(package, "ALL") != first


def test_a_compiled_copy_that_does_not_load_is_removed(tmp_path, ct):
    package = write_model_folder(tmp_path / "broken.mlpackage", *XY, fake={"load_error": "unsupported op"})
    engine = _engine(tmp_path, ct)
    compiled = engine.compile(package, "ALL")
    with pytest.raises(ModelFormatError, match="could not load.*unsupported op"):
        engine.load(compiled, "ALL")
    assert not compiled.exists()


def test_what_a_killed_worker_left_is_swept(tmp_path, ct, package):
    engine = _engine(tmp_path, ct)
    compiled = engine.compile(package, "ALL")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    (compiled.parent / f"{compiled.name}.loading-{dead.pid}").touch()  # killed while loading
    (compiled.parent / f"tmp-{dead.pid}-abcd.mlmodelc").mkdir()  # killed while compiling
    removed = engine.cache.sweep()
    assert compiled in removed and not compiled.exists()
    assert not (compiled.parent / f"tmp-{dead.pid}-abcd.mlmodelc").exists()
    assert engine.compile(package, "ALL") == compiled and compiled.exists()  # compiled again


def test_compile_of_a_compiled_model_is_a_no_op(tmp_path, ct, compiled):
    assert _engine(tmp_path, ct).compile(compiled, "ALL") == compiled
    assert FakeMLModelProxy.log == []


# ---------------------------------------------------------------- optimization hints

def test_optimization_hints_are_mapped_to_coremltools_enums(tmp_path, ct, compiled):
    engine = _engine(tmp_path, ct)
    engine.load(compiled, "CPU_AND_NE", optimization_hints={"reshape_frequency": "infrequent",
                                                            "specializationStrategy": "FastPrediction"})
    assert FakeMLModelProxy.log[-1][4] == {"reshapeFrequency": "Infrequent", "specializationStrategy": "FastPrediction"}
    engine.load(compiled, "ALL", optimization_hints={"reshapeFrequency": ct.ReshapeFrequency.Frequent,
                                                     "allowLowPrecisionAccumulationOnGPU": True})
    assert FakeMLModelProxy.log[-1][4] == {"reshapeFrequency": "Frequent", "allowLowPrecisionAccumulationOnGPU": "True"}


@pytest.mark.parametrize(("hints", "message"), [
    ({"reshapeFrequency": "sometimes"}, "not one of Frequent, Infrequent"),
    ({"turbo": "on"}, "unknown optimization hint 'turbo'"),
    ({"allowLowPrecisionAccumulationOnGPU": "yes"}, "true or false"),
])  # fmt: skip
def test_bad_optimization_hints_are_clear_errors(tmp_path, ct, compiled, hints, message):
    with pytest.raises(BenchError, match=message):
        _engine(tmp_path, ct).load(compiled, "ALL", optimization_hints=hints)


def test_optimization_hints_are_refused_below_macos_15(tmp_path, ct, compiled, monkeypatch):
    engine = _engine(tmp_path, ct, macos_version="14.6")
    with pytest.raises(BenchError, match=r"macOS 15\.0 or later.*14\.6"):
        engine.load(compiled, "ALL", optimization_hints={"reshapeFrequency": "Frequent"})
    coreml_bridge.install(monkeypatch, macos=(14, 6))  # and coremltools itself would refuse them
    with pytest.raises(ValueError, match="macOS >= 15"):
        ct.models.CompiledMLModel(str(compiled), optimization_hints={"reshapeFrequency": ct.ReshapeFrequency.Frequent})


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


@pytest.fixture
def plan_calls(ct, monkeypatch):
    calls = []

    def load_from_path(path, compute_units=ct.ComputeUnit.ALL):  # MLComputePlan.load_from_path(path, compute_units)
        assert isinstance(path, str) and isinstance(compute_units, ct.ComputeUnit)
        calls.append((path, compute_units.name))
        return _plan()

    monkeypatch.setattr(ct.models.compute_plan.MLComputePlan, "load_from_path", staticmethod(load_from_path))
    return calls


def test_compute_plan_summary_counts_ops_and_cost_per_device():
    summary = summarize(_plan(), path="Unet.mlmodelc", compute_unit="CPU_AND_NE")
    assert summary.available and summary.operations == 6 and summary.const_operations == 2
    ne, gpu, cpu, unknown = (summary.share(d) for d in ("NE", "GPU", "CPU", "unknown"))
    assert (ne.operations, gpu.operations, cpu.operations, unknown.operations) == (3, 1, 1, 1)
    assert ne.op_share == pytest.approx(0.5)
    assert ne.cost_share == pytest.approx(0.85 / 1.0) and gpu.cost_share == pytest.approx(0.1)
    assert summary.op_types["conv"] == {"NE": 2}
    assert summary.as_metrics()["plan_op_share/NE"] == pytest.approx(0.5)


def test_compute_plan_is_read_after_the_load_in_a_span_of_its_own(tmp_path, ct, compiled, plan_calls):
    engine = _engine(tmp_path, ct)
    model = engine.load(compiled, "CPU_AND_NE", compute_plan=True)
    assert plan_calls == [] and model.wants_compute_plan  # not inside the load
    assert model.load_compute_plan().share("NE").operations == 3
    assert plan_calls == [(str(compiled), "CPU_AND_NE")]


# ---------------------------------------------------------------- the pipeline over this engine

def _coreml_model_set(tmp_path):
    fake_set = make_model_set(tmp_path / "fakes")
    files = dict(fake_set.files)
    for part in ("text_encoder", "text_encoder_2", "unet", "vae_decoder"):
        desc = json.loads(Path(files[part]).read_text())
        suffix = ".mlpackage" if part == "unet" else ".mlmodelc"
        files[part] = write_model_folder(tmp_path / "coreml" / f"{part}{suffix}", *specs_for(desc), fake=desc)
    return type(fake_set)(**{**fake_set.__dict__, "files": files})


def test_pipeline_times_compile_load_and_first_prediction_through_coreml(tmp_path, ct):
    engine = _engine(tmp_path, ct)
    recorder = TimingRecorder()
    pipe = SDXLPipeline(_coreml_model_set(tmp_path), engine, {"default": "CPU_AND_NE", "vae_decoder": "CPU_AND_GPU"},
                        recorder=recorder)  # fmt: skip
    request = GenerationRequest(prompt="a cat", steps=3, seed=1)
    pipe.load(pipe.parts_for(request))
    assert recorder.stages()[:3] == ["compile/text_encoder", "load/text_encoder", "first_predict/text_encoder"]
    assert [entry[0] for entry in FakeMLModelProxy.log].count("compileModel") == 1  # only the .mlpackage
    loads = {Path(e[1]).stem.split("-")[0]: e[2] for e in FakeMLModelProxy.log if e[0] == "load"}
    assert loads == {"text_encoder": "CPU_AND_NE", "text_encoder_2": "CPU_AND_NE", "unet": "CPU_AND_NE",
                     "vae_decoder": "CPU_AND_GPU"}
    result = pipe.generate(request)
    assert result.image.shape == (64, 64, 3) and result.unet_calls == 3
    pipe.close()
    assert any((tmp_path / "cache").glob("unet-*.mlmodelc"))  # the compiled UNet stays cached


def test_coremltools_is_imported_before_any_span_and_cache_facts_become_span_values(tmp_path, ct, plan_calls):
    events = []

    class Engine(CoreMLEngine):
        def prepare(self):
            events.append("prepare")
            super().prepare()

    class Recorder(MeasuringRecorder):
        def span(self, stage, *, step=None):
            events.append(stage)
            return super().span(stage, step=step)

    engine = Engine(coremltools=ct, system="Darwin", macos_version="15.1", os_build="24B83",
                    cache=CompiledModelCache(tmp_path / "cache"))  # fmt: skip
    recorder = Recorder()
    previous = annotate.listen(recorder)
    try:
        pipe = SDXLPipeline(_coreml_model_set(tmp_path), engine, "CPU_AND_NE", recorder=recorder,
                            engine_options={"compute_plan": True})  # fmt: skip
        pipe.load(("unet",))
    finally:
        annotate.listen(previous)
    assert events[:5] == ["prepare", "compile/unet", "load/unet", "compute_plan/unet", "first_predict/unet"]
    spans = {span.stage: span for span in recorder.drain()}
    assert [(metric, value) for metric, value, _ in spans["compile/unet"].values] == [("compile_cache_hit", 0.0)]
    assert [(metric, value) for metric, value, _ in spans["load/unet"].values] == [("load_cache_warm", 0.0)]
