"""`bench run --device`: where the option goes (selection -> cases -> executor; manifest -> rows)."""

from __future__ import annotations

import pytest

from bench import session as sessions
from bench.cli import main
from bench.errors import SuiteError
from bench.schema import EnvironmentColumns


def test_device_off_macos_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    from bench.devices import host

    monkeypatch.setattr(host.platform, "system", lambda: "Linux")
    assert main(["run", "--device", "Lab iPhone", "--output", str(tmp_path)]) == 2
    assert "none can run benchmarks from here" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_device_selection_sets_every_case_on_the_coreml_engine(monkeypatch):
    from bench.devices import host

    monkeypatch.setattr(host.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(sessions, "coreml_runs_here", lambda: True)
    plan = sessions.plan_run(sessions.Selection(suite="smoke", device="00008130-001A2B3C4D5E001C"))
    assert plan.cases and {(c.engine, c.device) for c in plan.cases} == {("coreml", "00008130-001A2B3C4D5E001C")}
    with pytest.raises(SuiteError, match="--engine must be coreml"):
        sessions.plan_run(sessions.Selection(suite="smoke", engine="reference", device="x"))


def test_rows_name_the_device_as_the_published_tables_do():
    environment = {"machine": {"device": "Mac14,6", "chip": "Apple M2 Max", "os": "macOS 15.1", "host": "mac"},
                   "remote_device": {"published_name": "iPhone 15 Pro Max", "chip": "A17 Pro", "platform": "iOS",
                                     "os_version": "17.0.2", "os_build": "21A350", "product_type": "iPhone16,2"}}
    assert EnvironmentColumns.from_environment(environment) == EnvironmentColumns(
        device="iPhone16,2", chip="A17 Pro", os="iOS 17.0.2 21A350", host="mac", device_name="iPhone 15 Pro Max")


def test_the_executor_drives_the_remote_engine_for_a_device_case(tmp_path, monkeypatch):
    from bench.engines import coreml_remote
    from bench.executor import PipelineExecutor
    from bench.measure.recorder import NullRecorder
    from bench.models.variant import ResolvedModels
    from bench.suite.case import Case
    from tests.pipeline.fakes import FakeEngine, make_model_set

    opened = []

    class Remote(FakeEngine):
        def __init__(self, selector):
            super().__init__(separate_compile=True)
            self.compute_units = ("CPU_AND_NE",)
            opened.append(selector)
            self.closed = False

        def close(self):
            self.closed = True

    monkeypatch.setattr(coreml_remote, "RemoteCoreMLEngine", Remote)
    case = Case(suite="s", model="m", engine="coreml", compute_unit="CPU_AND_NE", steps=2, device="Lab iPhone")
    executor = PipelineExecutor(case, NullRecorder(), ResolvedModels(make_model_set(tmp_path)))
    executor.prepare()
    executor.load()
    executor.generate()
    executor.close()
    assert opened == ["Lab iPhone"] and executor.remote_engine.closed
    assert set(executor.remote_engine.load_compute_units.values()) == {"CPU_AND_NE"}


def test_the_executor_passes_a_cases_optimization_hints_to_the_engine(tmp_path, monkeypatch):
    from bench.engines import coreml_remote
    from bench.executor import PipelineExecutor
    from bench.measure.recorder import NullRecorder
    from bench.models.variant import ResolvedModels
    from bench.suite.case import Case
    from tests.pipeline.fakes import FakeEngine, make_model_set

    options_seen = []

    class Remote(FakeEngine):
        def __init__(self, selector):
            super().__init__()
            self.compute_units = ("ALL",)

        def load(self, path, compute_unit, **options):
            options_seen.append(options)
            return super().load(path, compute_unit)

        def close(self):
            pass

    monkeypatch.setattr(coreml_remote, "RemoteCoreMLEngine", Remote)
    case = Case(suite="s", model="m", engine="coreml", steps=1, device="Lab iPhone", reshape_frequency="Infrequent")
    executor = PipelineExecutor(case, NullRecorder(), ResolvedModels(make_model_set(tmp_path)))
    executor.prepare()
    executor.load()
    executor.close()
    assert options_seen and all(o == {"optimization_hints": {"reshapeFrequency": "Infrequent"}} for o in options_seen)
