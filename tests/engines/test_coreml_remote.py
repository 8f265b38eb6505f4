"""Core ML on a device through coremltools' real remote_device host code and a fake ModelRunner app.

What runs for real (installed coremltools 9.0, `models/ml_program/experimental/remote_device.py`):
`Device.get_devices` parsing devicectl JSON, `Device.prepare_for_model_debugging` (state check,
credentials, session), `_RemoteMLModelService` (argument validation, `_validate_device_state`, load,
predict, unload, result validation), `_DeviceCtlRemoteService` (polling), `_DeviceCtlSocket`
(request / response files), `_TensorDescriptor` (the wire format). Faked: devicectl's process calls
and the app on the device (tests/engines/modelrunner_fake.py, after ModelService.swift).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.devices import parse_devices
from bench.engines import annotate
from bench.engines.base import TensorSpec
from bench.engines.coreml_remote import (
    RemoteCoreMLEngine,
    RemoteDeviceError,
    RemoteSession,
    SigningCredentials,
    remote_device_module,
)
from bench.errors import BenchError, EngineUnavailableError
from bench.measure.spans import MeasuringRecorder
from tests.devices.devicectl_samples import list_devices_document
from tests.engines import modelrunner_fake
from tests.engines.coreml_bridge import write_model_folder

TEAM = SigningCredentials(development_team="ABCDE12345")


@pytest.fixture
def rd():
    import coremltools

    return remote_device_module(coremltools)


@pytest.fixture
def device_env(monkeypatch, rd, tmp_path):
    document = list_devices_document()
    sessions = modelrunner_fake.install(monkeypatch, rd, tmp_path, document)

    def open_session(selector, **waits):
        waits.setdefault("poll_seconds", 0.0)
        return RemoteSession.open(selector, credentials=TEAM, working_dir=tmp_path / "work",
                                  devices=lambda: parse_devices(document), **waits)  # fmt: skip

    return open_session, sessions


def _half_model(tmp_path, name="Unet.mlmodelc"):
    spec = TensorSpec
    inputs = (spec("x", (1, 4), np.dtype(np.float16)), spec("ids", (1, 4), np.dtype(np.int32)))
    outputs = (spec("y", (1, 4), np.dtype(np.float16)),)
    return write_model_folder(tmp_path / name, inputs, outputs)


class Timings:
    def __init__(self):
        self.timings = []

    def on_device_timing(self, timing):
        self.timings.append(timing)

    def on_span_value(self, value):
        pass


def test_only_checked_coremltools_versions_are_used(monkeypatch):
    import coremltools

    monkeypatch.setattr(coremltools, "__version__", "8.2")  # remote_device appeared in 8.3
    with pytest.raises(EngineUnavailableError, match=r"checked against coremltools 8\.3, 9\.0; this is coremltools 8\.2"):
        remote_device_module(coremltools)


def test_signing_credentials_from_environment_or_config_file(tmp_path):
    assert SigningCredentials.load({"BENCH_DEVICE_TEAM": "ABCDE12345"}).development_team == "ABCDE12345"
    config = tmp_path / "device.toml"
    config.write_text('provisioning_profile_uuid = "1234-abcd"\nbundle_identifier = "com.example.runner"\n')
    loaded = SigningCredentials.load({"BENCH_DEVICE_CONFIG": str(config)})
    assert loaded.provisioning_profile_uuid == "1234-abcd" and "values not recorded" in loaded.describe()
    assert "1234-abcd" not in loaded.describe()
    with pytest.raises(EngineUnavailableError, match="BENCH_DEVICE_TEAM"):
        SigningCredentials.load({"BENCH_DEVICE_CONFIG": str(tmp_path / "absent.toml")})
    config.write_text('team = "x"\n')
    with pytest.raises(BenchError, match="unknown key 'team'"):
        SigningCredentials.load({"BENCH_DEVICE_CONFIG": str(config)})


def test_load_and_predict_on_the_device_report_on_device_and_round_trip_times(tmp_path, device_env):
    open_session, sessions = device_env
    engine = RemoteCoreMLEngine("Lab iPhone", open_session=open_session)
    timings = Timings()
    previous = annotate.listen(timings)
    try:
        engine.prepare()
        (app,) = sessions
        assert app.credentials.development_team == "ABCDE12345"
        assert engine.identity()["product_type"] == "iPhone16,2" and engine.identity()["os_build"] == "21A350"
        model = engine.load(_half_model(tmp_path), "CPU_AND_NE")
        assert [s.describe() for s in model.input_specs] == ["x: float16[1, 4]", "ids: int32[1, 4]"]
        x = np.arange(8, dtype=np.float32).reshape(2, 4)[:, ::2].reshape(1, 4)  # not C-contiguous
        out = model.predict({"x": x.astype(np.float16), "ids": np.ones((1, 4), np.int64)})
    finally:
        annotate.listen(previous)
    assert out["y"].dtype == np.float16  # as the app returns it: the declared type
    np.testing.assert_array_equal(out["y"], 2 * x)
    assert app.requests == ["MLModelService.Load", "MLModelService.Prediction"]
    load, predict = timings.timings
    assert 0 < load.device_seconds <= load.round_trip_seconds  # the app measured the load; the host waited longer
    assert model.last_timing == predict and 0 < predict.device_seconds <= predict.round_trip_seconds
    model.close()
    assert app.requests[-1] == "MLModelService.Unload" and app.loaded == {}
    engine.close()
    assert app.stopped


def test_a_device_in_the_wrong_state_is_refused(device_env, rd):
    open_session, _ = device_env
    with pytest.raises(RemoteDeviceError, match=r"Drawer iPhone .* not connected \(tunnelState unavailable\)"):
        open_session("Drawer iPhone")
    with pytest.raises(RemoteDeviceError, match="Developer Mode is disabled"):
        open_session("New iPhone")
    # coremltools' own check refuses it too (state must be CONNECTED).
    (drawer,) = [d for d in rd.Device.get_devices() if d.name == "Drawer iPhone"]
    import asyncio

    with pytest.raises(ValueError, match="Required: State must be CONNECTED"):
        asyncio.run(drawer.prepare_for_model_debugging(credentials=rd.AppSigningCredentials(development_team="X")))


def test_an_app_killed_mid_case_fails_the_call_at_once(tmp_path, device_env):
    open_session, sessions = device_env
    engine = RemoteCoreMLEngine("Lab iPhone", open_session=open_session)
    model = engine.load(_half_model(tmp_path), "ALL")
    (app,) = sessions
    app.kill()
    with pytest.raises(RemoteDeviceError, match="ModelRunner app stopped"):
        model.predict({"x": np.ones((1, 4), np.float16), "ids": np.ones((1, 4), np.int32)})
    model.close()  # closing after the device is gone does not raise
    engine.close()


def test_refusals_of_the_app_are_errors_of_the_case(tmp_path, device_env):
    open_session, sessions = device_env
    engine = RemoteCoreMLEngine("Lab iPhone", open_session=open_session)
    broken = write_model_folder(tmp_path / "Broken.mlmodelc", *(
        (TensorSpec("x", (1, 4), np.dtype(np.float32)),), (TensorSpec("y", (1, 4), np.dtype(np.float32)),)),
        fake={"load_error": "Error in declaring network."})  # fmt: skip
    with pytest.raises(RemoteDeviceError, match="load Broken.mlmodelc for ALL failed.*Error in declaring network"):
        engine.load(broken, "ALL")
    with pytest.raises(BenchError, match=r"need iOS 18\.0 or later.*iOS 17\.0\.2"):  # the Lab iPhone runs 17.0.2
        engine.load(_half_model(tmp_path), "ALL", optimization_hints={"specializationStrategy": "FastPrediction"})
    engine.close()


def test_hints_for_a_device_use_the_names_modelrunner_reads():
    import coremltools as ct

    from bench.engines.coreml_hints import coreml_hints

    hints = coreml_hints(ct, {"reshape_frequency": "infrequent"}, os_name="iOS", os_version="18.1", remote=True)
    assert {k: v.name for k, v in hints.items()} == {"reshapeFrequency": "Infrequent"}  # what load() sends
    with pytest.raises(BenchError, match="not supported on a remote device"):
        coreml_hints(ct, {"allowLowPrecisionAccumulationOnGPU": True}, os_name="iOS", os_version="18.1", remote=True)


def test_a_pipeline_stage_on_the_device_records_device_latency_and_the_round_trip(tmp_path, device_env):
    open_session, _ = device_env
    engine = RemoteCoreMLEngine("Lab iPhone", open_session=open_session)
    recorder = MeasuringRecorder()
    previous = annotate.listen(recorder)
    engine.prepare()  # as ModelSlots does: the session opens before any span
    try:
        with recorder.span("load/unet"):
            model = engine.load(_half_model(tmp_path), "CPU_AND_NE")
        with recorder.span("diffusion"):
            for step in range(3):
                with recorder.span("unet", step=step):
                    model.predict({"x": np.ones((1, 4), np.float16), "ids": np.ones((1, 4), np.int32)})
    finally:
        annotate.listen(previous)
        engine.close()
    spans = recorder.drain()
    unet = [s for s in spans if s.stage == "unet"]
    assert all(s.host_round_trip is not None and 0 < s.seconds < s.host_round_trip for s in unet)
    (load,) = [s for s in spans if s.stage == "load/unet"]
    assert 0 < load.seconds < load.host_round_trip  # the model transfer is in the round trip only
    (diffusion,) = [s for s in spans if s.stage == "diffusion"]
    assert diffusion.host_round_trip is None
    assert diffusion.seconds < sum(s.host_round_trip for s in unet)


def test_devicectl_is_put_on_path_for_coremltools(tmp_path):
    import subprocess

    from bench.engines.coreml_remote import ensure_devicectl_on_path

    tools = tmp_path / "Xcode.app/Contents/Developer/usr/bin"
    tools.mkdir(parents=True)
    (tools / "devicectl").write_text("#!/bin/sh\n")
    (tools / "devicectl").chmod(0o755)
    environ = {"PATH": "/usr/bin"}

    def xcrun(command, **kwargs):
        assert command == ["xcrun", "--find", "devicectl"]
        return subprocess.CompletedProcess(command, 0, f"{tools / 'devicectl'}\n", "")

    ensure_devicectl_on_path(environ, run=xcrun)
    assert environ["PATH"] == f"{tools}:/usr/bin"
    ensure_devicectl_on_path(environ, run=None)  # found now: nothing runs, nothing changes
    assert environ["PATH"] == f"{tools}:/usr/bin"


def test_prepare_device_builds_installs_and_stops_the_app_once(tmp_path, device_env, monkeypatch):
    from bench.engines import coreml_remote

    _, sessions = device_env
    document = list_devices_document()
    real_open = coreml_remote.RemoteSession.open

    def open_with_test_settings(selector):
        return real_open(selector, credentials=TEAM, working_dir=tmp_path / "work",
                         devices=lambda: parse_devices(document), poll_seconds=0.0)  # fmt: skip

    monkeypatch.setattr(coreml_remote.RemoteSession, "open", staticmethod(open_with_test_settings))
    said = []
    coreml_remote.prepare_device("Lab iPhone", said.append)
    (app,) = sessions
    assert app.stopped and "Lab iPhone" in said[0]
