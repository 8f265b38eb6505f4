"""Core ML on a connected iPhone or iPad, through coremltools' experimental remote device.

Every underscore / experimental coremltools API the harness uses lives in this module, checked
against `coremltools/models/ml_program/experimental/remote_device.py` of coremltools 8.3 and 9.0
(identical in both) and the ModelRunner app's `ModelService.swift`. Other coremltools versions are
refused with a message (`CHECKED_COREMLTOOLS`).

- `RemoteSession.open(selector)`: finds the device (`Device.get_devices()`, devicectl), builds the
  ModelRunner app with Xcode (once: the build is kept under the cache folder per device and reused
  by every later case and run), installs and launches it (`Device.prepare_for_model_debugging`).
  Signing comes from `BENCH_DEVICE_TEAM` / `BENCH_DEVICE_PROFILE` / `BENCH_DEVICE_BUNDLE_ID` or the
  file named by `BENCH_DEVICE_CONFIG` (default `<user config>/sdxl-coreml-bench/device.toml`);
  it is never written to results.
- `RemoteCoreMLEngine.load`: sends the compiled `.mlmodelc` and loads it on the device with the
  case's compute units (what `_RemoteMLModelService.load_on_device` does, with longer waits: a cold
  Neural Engine compile of an SDXL UNet takes minutes, far beyond coremltools' default 20 polls).
- `RemoteCoreMLModel.predict`: one prediction on the device. The app measures `MLModel(contentsOf:)`
  and `prediction(from:)` with mach_absolute_time (`load_duration_in_nano_seconds`,
  `last_predict_duration_in_nano_seconds`); the host measures the round trip (transfers included).
  Each call reports both (`bench.measure.annotate.DeviceTiming`, also `model.last_timing`): the
  recorder makes the on-device time the stage's latency and the round trip a `host_round_trip` row.

A device that disconnects, locks or kills the app raises `RemoteDeviceError`: the case fails, the run goes on.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.engines import annotate
from bench.engines.annotate import DeviceTiming
from bench.engines.base import COREML_COMPUTE_UNITS, TensorSpec
from bench.engines.coreml_devices import ConnectedDevice, find_device, list_devices
from bench.engines.coreml_hints import coreml_hints, parse_version
from bench.errors import BenchError, EngineUnavailableError, InputError, ModelFormatError

#: coremltools versions whose remote_device.py this module was checked against (major, minor).
CHECKED_COREMLTOOLS = ((8, 3), (9, 0))
#: dtypes the ModelRunner wire format carries (`_TensorDescriptor.DataType`, 8.3 / 9.0).
WIRE_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32))
#: Where ModelRunner reads requests (`load_on_device` uses the same source).
_APP_SOURCE = "Documents/modelrunnerd"


class RemoteDeviceError(BenchError):
    """The device stopped answering (disconnected, locked, app killed) or refused a request: this case fails."""


@dataclass(frozen=True)
class SigningCredentials:
    """What Xcode needs to sign the ModelRunner app: a team (automatic signing) or a provisioning profile."""

    development_team: str | None = None
    provisioning_profile_uuid: str | None = None
    bundle_identifier: str | None = None
    source: str = "environment"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> SigningCredentials:
        """From `BENCH_DEVICE_TEAM` / `BENCH_DEVICE_PROFILE` / `BENCH_DEVICE_BUNDLE_ID`, else the config file."""
        environ = os.environ if environ is None else environ
        team, profile = environ.get("BENCH_DEVICE_TEAM"), environ.get("BENCH_DEVICE_PROFILE")
        bundle = environ.get("BENCH_DEVICE_BUNDLE_ID")
        if team or profile:
            return cls(team or None, profile or None, bundle or None, "environment")
        path = Path(environ["BENCH_DEVICE_CONFIG"]) if environ.get("BENCH_DEVICE_CONFIG") else default_config_path()
        if not path.is_file():
            raise EngineUnavailableError(
                "signing the ModelRunner app needs BENCH_DEVICE_TEAM (your Apple development team id) or "
                f"BENCH_DEVICE_PROFILE (a provisioning profile UUID, with BENCH_DEVICE_BUNDLE_ID), or {path} "
                "with development_team / provisioning_profile_uuid / bundle_identifier"
            )
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BenchError(f"{path}: unreadable signing config ({error})") from None
        unknown = sorted(set(data) - {"development_team", "provisioning_profile_uuid", "bundle_identifier"})
        if unknown:
            raise BenchError(f"{path}: unknown key {unknown[0]!r}; known: development_team, provisioning_profile_uuid, bundle_identifier")
        if not (data.get("development_team") or data.get("provisioning_profile_uuid")):
            raise BenchError(f"{path}: needs development_team or provisioning_profile_uuid")
        return cls(data.get("development_team"), data.get("provisioning_profile_uuid"), data.get("bundle_identifier"), str(path))

    def describe(self) -> str:
        """For the manifest: where the credentials came from, never their values."""
        return f"signing credentials from {self.source} (values not recorded)"


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("sdxl-coreml-bench")) / "device.toml"


def remote_device_module(ct: ModuleType) -> ModuleType:
    """coremltools' remote_device module, if this coremltools is one the harness was checked against."""
    version = parse_version(getattr(ct, "__version__", "0"))[:2]
    if version not in CHECKED_COREMLTOOLS:
        checked = ", ".join(".".join(map(str, v)) for v in CHECKED_COREMLTOOLS)
        raise EngineUnavailableError(
            f"running on a device uses coremltools' experimental remote_device, checked against coremltools "
            f"{checked}; this is coremltools {getattr(ct, '__version__', '?')}. Install one of those versions"
        )
    from coremltools.models.ml_program.experimental import remote_device

    return remote_device


def _live_socket_class(rd: ModuleType) -> type:
    """`_DeviceCtlSocket` whose `is_alive` asks the app session (coremltools reads the bound method
    `session.is_alive` as a value, which is always true, so a killed app was retried for minutes)."""

    class LiveSocket(rd._DeviceCtlSocket):
        @property
        def is_alive(self) -> bool:
            return bool(self.device.session.is_alive())

    return LiveSocket


class RemoteSession:
    """A prepared device: ModelRunner installed and running, an event loop to drive coremltools' coroutines."""

    def __init__(self, rd: ModuleType, device: Any, identity: ConnectedDevice, loop: asyncio.AbstractEventLoop,
                 *, poll_seconds: float = 0.5, load_wait: float = 1800.0, call_wait: float = 300.0) -> None:  # fmt: skip
        self.rd = rd
        self.device = device  # coremltools Device with its session
        self.identity = identity
        self.loop = loop
        self.poll_seconds = poll_seconds
        self.load_wait = load_wait
        self.call_wait = call_wait

    @classmethod
    def open(
        cls,
        selector: str,
        *,
        ct: ModuleType | None = None,
        credentials: SigningCredentials | None = None,
        working_dir: Path | None = None,
        devices: Callable[[], list[ConnectedDevice]] = list_devices,
        **waits: float,
    ) -> RemoteSession:
        """Find the device `selector` names, then build (first time), install and launch ModelRunner on it."""
        if ct is None:
            import coremltools as ct
        rd = remote_device_module(ct)
        ensure_devicectl_on_path()
        identity = find_device(devices(), selector)
        reason = identity.not_ready_reason
        if reason is not None:
            raise RemoteDeviceError(f"device {identity.name} ({identity.udid}) is {reason}")
        credentials = credentials or SigningCredentials.load()
        candidates = [d for d in rd.Device.get_devices() if d.udid == identity.udid]
        if not candidates:
            raise RemoteDeviceError(f"coremltools' remote device does not list {identity.name} ({identity.udid})")
        working_dir = working_dir or _default_working_dir(identity.udid)
        working_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        signing = rd.AppSigningCredentials(development_team=credentials.development_team,
                                           provisioning_profile_uuid=credentials.provisioning_profile_uuid,
                                           bundle_identifier=credentials.bundle_identifier)  # fmt: skip
        try:
            device = loop.run_until_complete(
                candidates[0].prepare_for_model_debugging(credentials=signing, working_directory=working_dir)
            )
        except Exception as error:  # noqa: BLE001 - xcodebuild, devicectl and state errors all end here
            loop.close()
            raise RemoteDeviceError(f"device {identity.name}: preparing ModelRunner failed: {_one_line(error)}") from error
        return cls(rd, device, identity, loop, **waits)

    def attempts(self, seconds: float) -> int:
        return max(1, math.ceil(seconds / max(self.poll_seconds, 0.05)))

    def alive(self) -> bool:
        session = getattr(self.device, "session", None)
        return session is not None and bool(session.is_alive())

    def run(self, coroutine: Any, what: str) -> Any:
        """Run one coremltools coroutine; any failure becomes a RemoteDeviceError naming the device."""
        try:
            return self.loop.run_until_complete(coroutine)
        except Exception as error:  # noqa: BLE001 - devicectl, JSON-RPC and transfer errors all end here
            if not self.alive():
                raise RemoteDeviceError(
                    f"device {self.identity.name}: {what} failed: the ModelRunner app stopped (device disconnected, "
                    f"locked, or the app was killed): {_one_line(error)}"
                ) from error
            raise RemoteDeviceError(f"device {self.identity.name}: {what} failed: {_one_line(error)}") from error

    async def _load(self, compiled: Path, units: Any, function_name: str | None, hints: dict | None) -> Any:
        rd = self.rd
        rd._RemoteMLModelService._validate_device_state(device=self.device)
        socket = _live_socket_class(rd)(device=self.device, source=_APP_SOURCE)
        service = rd._DeviceCtlRemoteService(socket=socket, poll_time=self.poll_seconds,
                                             max_attempts=self.attempts(self.load_wait))  # fmt: skip
        model = rd._RemoteMLModelService(service=service, compiled_model_path=compiled, compute_units=units,
                                         function_name=function_name, optimization_hints=hints)  # fmt: skip
        await model.load()
        service.max_attempts = self.attempts(self.call_wait)
        return model

    def close(self) -> None:
        """Stop the app's console session (ends the app) and the loop."""
        session = getattr(self.device, "session", None)
        if session is not None:
            try:
                session.stop()
            except Exception:  # noqa: BLE001 - the process may be gone already
                pass
        if not self.loop.is_closed():
            self.loop.close()


def ensure_devicectl_on_path(environ: dict[str, str] | None = None, run: Callable[..., Any] | None = None) -> None:
    """coremltools runs `devicectl` by name (and checks `shutil.which`); Xcode keeps it off PATH, so add
    the folder `xcrun --find devicectl` names, for this process only."""
    import subprocess

    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    if shutil.which("devicectl", path=environ.get("PATH")):
        return
    run = run or subprocess.run
    try:
        found = run(["xcrun", "--find", "devicectl"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return  # coremltools then says devicectl is missing, which is true
    if found.returncode == 0 and found.stdout.strip():
        environ["PATH"] = str(Path(found.stdout.strip()).parent) + os.pathsep + environ.get("PATH", "")


def _default_working_dir(udid: str) -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdxl-coreml-bench")) / "modelrunner" / udid


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def prepare_device(selector: str, status: Callable[[str], None] = lambda text: None) -> None:
    """Build (first time only) and install ModelRunner on the device once, before a run's first case,
    so a signing or device problem stops the run up front; each case's worker then launches it."""
    status(f"preparing ModelRunner on device {selector} (the first build takes minutes)")
    RemoteSession.open(selector).close()


class RemoteCoreMLModel:
    """A model loaded on the device; `predict` runs there and reports on-device and round-trip times."""

    def __init__(self, path: Path, service: Any, session: RemoteSession, input_specs: tuple[TensorSpec, ...],
                 output_specs: tuple[TensorSpec, ...], compute_unit: str) -> None:  # fmt: skip
        self.path = path
        self.input_specs = input_specs
        self.output_specs = output_specs
        self.compute_unit = compute_unit
        self.last_timing: DeviceTiming | None = None
        self._service = service
        self._session = session

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._service is None:
            raise InputError(f"{self.path}: predict after close")
        expected = {s.name for s in self.input_specs}
        if set(inputs) != expected:
            raise InputError(f"{self.path}: inputs {sorted(inputs)} do not match the model's {sorted(expected)}")
        # C-contiguous: the wire format sends tobytes() with the array's own strides.
        feed = {s.name: np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in self.input_specs}
        start = time.perf_counter_ns()
        outputs = self._session.run(self._service.predict(inputs=feed), f"predict {self.path.name}")
        round_trip = (time.perf_counter_ns() - start) / 1e9
        device_ns = self._service.last_predict_duration_in_nano_seconds
        if device_ns is None:
            raise RemoteDeviceError(f"device {self._session.identity.name}: no on-device duration for {self.path.name}")
        self.last_timing = DeviceTiming(device_ns / 1e9, round_trip)
        annotate.device_timing(self.last_timing)
        declared = {s.name: s.dtype for s in self.output_specs}
        return {name: np.asarray(value, dtype=declared.get(name, np.asarray(value).dtype)) for name, value in outputs.items()}

    def close(self) -> None:
        """Unload on the device (so coremltools' finalizer sends nothing) and drop the request folder."""
        service, self._service = self._service, None
        if service is None:
            return
        try:
            self._session.run(service.unload(), f"unload {self.path.name}")
        except RemoteDeviceError:
            # The device is gone: nothing is left to unload, and coremltools' finalizer must not try
            # again on a closed event loop.
            service._state = self._session.rd._RemoteMLModelService.State.Unloaded
        socket = getattr(getattr(service, "_service", None), "socket", None)
        if socket is not None:
            shutil.rmtree(socket.working_directory, ignore_errors=True)


class RemoteCoreMLEngine:
    """Engine protocol for one device: compiles on this Mac (cached), loads and predicts on the device."""

    name = "coreml"
    compute_units = COREML_COMPUTE_UNITS
    separate_compile = True

    def __init__(self, selector: str, *, open_session: Callable[[str], RemoteSession] = RemoteSession.open,
                 local: Any = None) -> None:  # fmt: skip
        self.selector = selector
        self._open_session = open_session
        self._local = local  # the Mac's CoreMLEngine, for compiling packages
        self.session: RemoteSession | None = None
        self._models: list[RemoteCoreMLModel] = []

    def prepare(self) -> None:
        """Open the device session (find, build once, install, launch): before any timed span."""
        if self.session is None:
            self.session = self._open_session(self.selector)

    def _require(self) -> RemoteSession:
        self.prepare()
        assert self.session is not None
        return self.session

    def is_available(self) -> bool:
        return True  # availability is decided when the session opens, with the reason

    def describe(self, path: str | Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Specs as the wire format carries them: the model's own dtypes (float16 included)."""
        from bench.engines.model_io import read_model_io

        io = read_model_io(path)
        for spec in (*io.inputs.values(), *io.outputs.values()):
            if np.dtype(spec.dtype) not in WIRE_DTYPES:
                raise ModelFormatError(f"{path}: {spec.describe()}: ModelRunner carries float16/32/64 and int32 only")
        return tuple(io.inputs.values()), tuple(io.outputs.values())

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        path = Path(path)
        if path.suffix == ".mlmodelc":
            return path
        if self._local is None:
            from bench.engines.coreml import ENGINE

            self._local = ENGINE
        return self._local.compile(path, compute_unit)  # Core ML on this Mac compiles; the device loads

    def load(self, path: str | Path, compute_unit: str, **options: object) -> RemoteCoreMLModel:
        path = Path(path)
        unknown = sorted(set(options) - {"optimization_hints", "function_name"})
        if unknown:
            raise BenchError(f"engine 'coreml' on a device: unknown load option(s) {', '.join(unknown)}")
        if compute_unit not in self.compute_units:
            raise BenchError(f"engine 'coreml' has no compute unit {compute_unit!r}; expected one of {', '.join(self.compute_units)}")
        session = self._require()
        import coremltools as ct

        if path.suffix != ".mlmodelc":
            path = self.compile(path, compute_unit)
        if not path.is_dir():
            raise ModelFormatError(f"model {path} does not exist (a compiled .mlmodelc folder)")
        os_name = "iOS" if (session.identity.platform or "iOS") in ("iOS", "iPadOS") else session.identity.platform
        hints = coreml_hints(ct, options.get("optimization_hints"), os_name=os_name or "iOS",  # type: ignore[arg-type]
                             os_version=session.identity.os_version or "0", remote=True)  # fmt: skip
        inputs, outputs = self.describe(path)
        start = time.perf_counter_ns()
        service = session.run(session._load(path, ct.ComputeUnit[compute_unit], options.get("function_name"), hints),
                              f"load {path.name} for {compute_unit}")  # fmt: skip
        round_trip = (time.perf_counter_ns() - start) / 1e9
        device_ns = service.load_duration_in_nano_seconds
        if device_ns is not None:
            annotate.device_timing(DeviceTiming(device_ns / 1e9, round_trip))
        model = RemoteCoreMLModel(path, service, session, inputs, outputs, compute_unit)
        self._models.append(model)
        return model

    def identity(self) -> dict[str, Any]:
        return self._require().identity.identity()

    def close(self) -> None:
        """Unload what is still loaded, then stop the app and the session."""
        for model in self._models:
            model.close()
        self._models.clear()
        if self.session is not None:
            self.session.close()
            self.session = None


__all__ = ["CHECKED_COREMLTOOLS", "RemoteCoreMLEngine", "RemoteCoreMLModel", "RemoteDeviceError", "RemoteSession",
           "SigningCredentials", "prepare_device", "remote_device_module"]  # fmt: skip
