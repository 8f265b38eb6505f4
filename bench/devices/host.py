"""This Mac as a benchmark target: chip, memory, OS, and whether Core ML can run here."""

from __future__ import annotations

import platform
from dataclasses import dataclass

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
