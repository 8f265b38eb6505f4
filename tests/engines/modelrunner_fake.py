"""A fake ModelRunner app on a fake device, behind coremltools' real remote_device host code.

coremltools' `_DeviceCtlSocket` talks to the app through `session.send_file_to_app` /
`session.receive_file_from_app` (devicectl copies into and out of the app's data container). This
session keeps the container in a folder and answers requests the way coremltools 9.0's
`modelrunner/ModelRunner/ModelService.swift` does:

- `MLModelService.Load`: the resource must be a directory named `*.mlmodelc`; computeUnits one of
  CPU_ONLY / CPU_AND_GPU / CPU_AND_NE / ALL; optimizationHints reshapeFrequency Frequent|Infrequent,
  specializationStrategy Default|FastPrediction (iOS 18+ only); answers {modelID, duration, isCached}
  with duration measured around the (fake) load, in nanoseconds.
- `MLModelService.Prediction`: inputs are TensorDescriptors into the data file (read with their
  strides, like `MLMultiArray(dataPointer:strides:)`); outputs are written back in the model's
  declared output types (Float16 stays Float16); duration measured around the prediction.
- `MLModelService.Unload`, `MLModelService.ComputePlan`.
- Errors are JSON-RPC error objects {code, message}; a missing file makes `receive` fail as a
  failed `devicectl device copy from` does (`_DeviceCtlError`).

`is_alive` is a method, as on `_AppSession`; `kill()` makes the app vanish mid-case.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from tests.engines.coreml_bridge import _declared
from tests.pipeline.fakes import _run as run_fake

_TYPES = {"Float16": np.float16, "Float32": np.float32, "Float64": np.float64, "Int32": np.int32}
_DECLARED = {"Float16": "Float16", "Float32": "Float32", "Double": "Float64", "Int32": "Int32"}
_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


class FakeAppSession:
    def __init__(self, rd, device, container: Path, working_directory: Path, os_version: str = "17.0.2") -> None:
        self.rd = rd
        self.device = device
        self.container = container
        self.working_directory = working_directory
        self.os_version = os_version
        self.loaded: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.stopped = False
        self._alive = True

    # ---- _AppSession's surface
    def is_alive(self) -> bool:
        return self._alive

    def stop(self) -> None:
        self.stopped = True
        self._alive = False

    def kill(self) -> None:
        """The app dies (jetsam, a lock, a pulled cable): transfers fail from now on."""
        self._alive = False

    def send_file_to_app(self, source_path: Path, destination: str):
        if not self._alive:
            raise self.rd._DeviceCtlError(message="ERROR: The specified device was not found.", error_code=1)
        target = self.container / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source_path).is_dir():
            shutil.copytree(source_path, target)
        else:
            shutil.copyfile(source_path, target)
        if destination.endswith("/message.json") and "/requests/messages/" in destination:
            self._serve(target)
        return self.rd._DataTransferInfo(source=str(source_path), destination=destination)

    def receive_file_from_app(self, destination_path: Path, source: str):
        origin = self.container / source
        if not self._alive or not origin.exists():
            raise self.rd._DeviceCtlError(message=f"ERROR: {source} does not exist", error_code=1)
        shutil.copyfile(origin, destination_path)
        return self.rd._DataTransferInfo(source=source, destination=str(destination_path))

    # ---- the app
    def _serve(self, message_path: Path) -> None:
        message = json.loads(message_path.read_text())
        request_id, method, params = message["id"], message["method"], message["params"]
        self.requests.append(method)
        base = self.container / "Documents/modelrunnerd"
        resource = base / "requests/resources" / request_id / message["resource"] if "resource" in message else None
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        out_resource = None
        try:
            if method == "MLModelService.Load":
                response["result"] = self._load(params, resource)
            elif method == "MLModelService.Prediction":
                response["result"], out_resource = self._predict(params, resource)
            elif method == "MLModelService.Unload":
                if self.loaded.pop((params["modelID"], params["computeUnits"]), None) is None:
                    raise ValueError(f"The model with ID '{params['modelID']}' is not currently loaded.")
                response["result"] = {"modelID": params["modelID"]}
            elif method == "MLModelService.ComputePlan":
                response["result"] = {"modelID": params["modelID"], "infos": []}
            else:
                raise ValueError(f"Missing parameters for '{method}'.")
        except ValueError as error:
            response = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32600, "message": str(error)}}
        folder = base / "responses" / request_id
        folder.mkdir(parents=True, exist_ok=True)
        if out_resource is not None:
            name = f"{uuid.uuid4()}.bin"
            (folder / name).write_bytes(out_resource)
            response["resource"] = name
        (folder / "message.json").write_text(json.dumps(response))

    def _load(self, params: dict, resource: Path | None) -> dict:
        if resource is None:
            raise ValueError("Model file is required but was not provided.")
        if not resource.is_dir():
            raise ValueError(f"Expected a directory for the mlmodelc, but found a file at path: {resource}")
        if resource.suffix != ".mlmodelc":
            raise ValueError(f"Expected an mlmodelc directory, but found: {resource.name}")
        if params["computeUnits"] not in _UNITS:
            raise ValueError(f"Invalid compute unit '{params['computeUnits']}'.")
        hints = params.get("optimizationHints") or {}
        if hints.get("reshapeFrequency", "Frequent") not in ("Frequent", "Infrequent"):
            raise ValueError(f"Invalid ReshapeFrequency representation: {hints['reshapeFrequency']}.")
        if "specializationStrategy" in hints:
            if int(self.os_version.split(".")[0]) < 18:
                raise ValueError("Specialization Strategy are only supported on ... iOS 18.0+")
            if hints["specializationStrategy"] not in ("Default", "FastPrediction"):
                raise ValueError(f"Invalid SpecializationStrategy representation: {hints['specializationStrategy']}.")
        start = time.perf_counter_ns()
        fake = json.loads((resource / "fake.json").read_text())
        if "load_error" in fake:
            raise ValueError(fake["load_error"])
        inputs, outputs = _declared(resource)
        duration = time.perf_counter_ns() - start
        self.loaded[(params["modelID"], params["computeUnits"])] = {"fake": fake, "inputs": inputs, "outputs": outputs}
        return {"modelID": params["modelID"], "duration": duration, "isCached": False}

    def _predict(self, params: dict, resource: Path | None) -> tuple[dict, bytes]:
        if resource is None:
            raise ValueError("The TensorDescriptor requires a data file, but none was provided.")
        model = self.loaded.get((params["modelID"], params["computeUnits"]))
        if model is None:
            raise ValueError(f"The model with ID '{params['modelID']}' is not currently loaded.")
        data = resource.read_bytes()
        arrays = {}
        for name, descriptor in params["inputs"].items():
            if descriptor["dataType"] not in _TYPES:
                raise ValueError(f"Unsupported data type {descriptor['dataType']}")
            dtype = np.dtype(_TYPES[descriptor["dataType"]])
            storage = descriptor["storage"]
            flat = np.frombuffer(data[storage["offset"]: storage["offset"] + storage["size"]], dtype)
            strides = [s * dtype.itemsize for s in descriptor["strides"]]
            array = np.lib.stride_tricks.as_strided(flat, descriptor["shape"], strides)
            declared_type, shape = model["inputs"][name]
            if tuple(array.shape) != shape:
                raise ValueError(f"MultiArray shape {tuple(array.shape)} does not match {shape} for {name}")
            arrays[name] = np.array(array).astype(_TYPES[_DECLARED[declared_type]])
        start = time.perf_counter_ns()
        if model["fake"].get("kind") == "double":
            results = {name: arrays[next(iter(arrays))] * 2 for name in model["outputs"]}
        else:
            results = run_fake(model["fake"], arrays)
        duration = time.perf_counter_ns() - start
        buffer, outputs = b"", {}
        for name, value in results.items():
            kind = _DECLARED[model["outputs"][name]]
            value = np.ascontiguousarray(value, dtype=_TYPES[kind])
            raw = value.tobytes()
            outputs[name] = {"dataType": kind, "shape": list(value.shape),
                             "strides": [s // value.itemsize for s in value.strides],
                             "storage": {"offset": len(buffer), "size": len(raw)}}  # fmt: skip
            buffer += raw
        return {"modelID": params["modelID"], "outputs": outputs, "duration": duration, "resource": ""}, buffer


def install(monkeypatch, rd, tmp_path: Path, document: dict, *, os_version: str = "17.0.2") -> list[FakeAppSession]:
    """Make coremltools' remote_device see `document` from devicectl and launch fake apps; returns the sessions."""
    sessions: list[FakeAppSession] = []
    monkeypatch.setattr(rd._DeviceCtl, "_run_command", staticmethod(lambda command: document))

    def build_and_launch(self, build_directory, working_directory, credentials=None, clean=False):
        # Device._build_and_launch_model_runner_app(build_directory, working_directory, credentials, clean)
        assert isinstance(credentials, rd.AppSigningCredentials)
        rd._AppBuilder.check_app_signing_credentials(credentials=credentials)  # the real check
        session = FakeAppSession(rd, self, tmp_path / f"container-{len(sessions)}", Path(working_directory),
                                 os_version=self.os_version)  # fmt: skip
        session.credentials = credentials
        sessions.append(session)
        return session

    monkeypatch.setattr(rd.Device, "_build_and_launch_model_runner_app", build_and_launch)
    return sessions
