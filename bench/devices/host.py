"""This Mac as a benchmark target: chip, memory, OS, and whether Core ML can run here."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class HostInfo:
    model: str
    chip: str
    memory_bytes: int
    os: str
    coreml_available: bool
    coreml_reason: str | None  # why not, when not


def this_machine() -> HostInfo:
    from bench.engines.coreml import ENGINE
    from bench.measure.environment import chip_name, device_model, os_description

    reason = ENGINE.unavailable_reason()
    return HostInfo(device_model(), chip_name(), psutil.virtual_memory().total, os_description(),
                    reason is None, reason)  # fmt: skip


def devices_unsupported_reason() -> str | None:
    """Why no iPhone / iPad can be driven from here (None on macOS)."""
    if platform.system() != "Darwin":
        return (f"this machine runs {platform.system()}: iPhones and iPads are driven from a Mac with Xcode "
                "(xcrun devicectl), so none can run benchmarks from here")  # fmt: skip
    return None


def remote_device_environment(selector: str) -> dict[str, Any]:
    """Identity of the `--device` iPhone / iPad for the manifest; refuses a device that is absent or not ready."""
    from bench.engines.coreml_devices import find_device, list_devices
    from bench.engines.coreml_remote import SigningCredentials

    device = find_device(list_devices(), selector)
    if device.not_ready_reason:
        from bench.errors import BenchError

        raise BenchError(f"--device {selector}: {device.name} ({device.udid}) is {device.not_ready_reason}")
    return {
        **device.identity(),
        "signing": SigningCredentials.load().describe(),
        "peak_memory": None,
        "peak_memory_absent_reason": "coremltools' ModelRunner reports no memory figure of the app; peak_rss / "
        "peak_footprint rows are the host's (the Python process driving the device)",
        "timing": "latency rows of stages that run on the device are the app's on-device durations "
        "(mach_absolute_time around MLModel load / prediction); host_round_trip rows add transfers",
    }
