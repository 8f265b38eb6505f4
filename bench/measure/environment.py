"""Where a run happened: machine, OS, thermal and power state, versions, git commit.

Everything here goes into manifest.json; `device`, `chip`, `os` and `host` also go into every
results row (`bench.schema.EnvironmentColumns`). A value the OS does not report is left out with the reason, never guessed.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

_PACKAGES = ("numpy", "coremltools", "pandas", "psutil", "rich", "sdxl-coreml-bench")


def _run(command: list[str], cwd: Path | None = None, timeout: float = 5.0) -> str | None:
    """stdout of a command, or None when it is missing or fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _sysctl(name: str) -> str | None:
    return _run(["sysctl", "-n", name])


def device_model() -> str:
    """hw.model on macOS (e.g. Mac14,6); the DMI product name on Linux; else the machine type."""
    if platform.system() == "Darwin":
        return _sysctl("hw.model") or platform.machine()
    product = _read("/sys/devices/virtual/dmi/id/product_name")
    return product or platform.machine()


def chip_name() -> str:
    """machdep.cpu.brand_string on macOS (e.g. Apple M2 Max); /proc/cpuinfo model name on Linux."""
    if platform.system() == "Darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()
    cpuinfo = _read("/proc/cpuinfo") or ""
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def os_description() -> str:
    """macOS version and build (e.g. macOS 14.4 23E214); Linux distribution and kernel."""
    if platform.system() == "Darwin":
        version = platform.mac_ver()[0]
        build = _run(["sw_vers", "-buildVersion"])
        return f"macOS {version}" + (f" {build}" if build else "")
    if platform.system() == "Linux":
        try:
            pretty = platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
        except OSError:
            pretty = "Linux"
        return f"{pretty} (kernel {platform.release()})"
    return f"{platform.system()} {platform.release()}"


def thermal_state() -> dict[str, Any]:
    """Thermal condition now: `pmset -g therm` on macOS, thermal zones on Linux."""
    if platform.system() == "Darwin":
        text = _run(["pmset", "-g", "therm"])
        if text is None:
            return {"available": False, "reason": "pmset -g therm failed"}
        limits = dict(re.findall(r"(CPU_Scheduler_Limit|CPU_Available_CPUs|CPU_Speed_Limit)\s*=\s*(\d+)", text))
        state: dict[str, Any] = {"available": True, "source": "pmset -g therm", "raw": text}
        state.update({key: int(value) for key, value in limits.items()})
        if "No thermal warning level has been recorded" in text:
            state["thermal_warning"] = "none"
        return state
    if platform.system() == "Linux":
        zones = {}
        for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
            kind, temp = _read(f"{zone}/type"), _read(f"{zone}/temp")
            if kind and temp and temp.lstrip("-").isdigit():
                zones[f"{Path(zone).name}:{kind}"] = int(temp) / 1000.0
        if not zones:
            return {"available": False, "reason": "no readable /sys/class/thermal zone"}
        return {"available": True, "source": "/sys/class/thermal", "celsius": zones}
    return {"available": False, "reason": f"not implemented for {platform.system()}"}


def low_power_mode() -> dict[str, Any]:
    """Low Power Mode on macOS (`pmset -g`); the ACPI platform profile on Linux where readable."""
    if platform.system() == "Darwin":
        text = _run(["pmset", "-g"]) or ""
        match = re.search(r"^\s*lowpowermode\s+(\d)", text, re.MULTILINE)
        if match:
            return {"available": True, "enabled": match.group(1) == "1", "source": "pmset -g"}
        # Macs with a High Power Mode report one `powermode` setting instead: 0 automatic, 1 low, 2 high.
        match = re.search(r"^\s*powermode\s+(\d)", text, re.MULTILINE)
        if match:
            mode = {"0": "automatic", "1": "low", "2": "high"}.get(match.group(1), match.group(1))
            return {"available": True, "enabled": mode == "low", "power_mode": mode, "source": "pmset -g"}
        return {"available": False, "reason": "pmset -g reports neither lowpowermode nor powermode on this Mac"}
    profile = _read("/sys/firmware/acpi/platform_profile")
    if profile:
        return {"available": True, "platform_profile": profile, "source": "/sys/firmware/acpi/platform_profile"}
    return {"available": False, "reason": f"{platform.system()} does not report a low-power mode here"}


def power_state() -> dict[str, Any]:
    """Thermal and power state, captured at the start and the end of a run."""
    battery = None
    try:
        sensor = psutil.sensors_battery()
    except (AttributeError, NotImplementedError, OSError):
        sensor = None
    if sensor is not None:
        battery = {"percent": sensor.percent, "plugged_in": sensor.power_plugged}
    return {"thermal": thermal_state(), "low_power_mode": low_power_mode(), "battery": battery}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    from bench import __version__

    versions["bench"] = __version__
    return versions


def git_state(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the checkout `bench` runs from (or `path`)."""
    import bench

    where = path or Path(bench.__file__).resolve().parent.parent
    commit = _run(["git", "rev-parse", "HEAD"], cwd=where)
    if commit is None:
        return {"available": False, "reason": f"{where} is not a git checkout (or git is missing)"}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where)
    return {"available": True, "commit": commit, "dirty": bool(status), "path": str(where)}


def capture_environment() -> dict[str, Any]:
    """The machine, OS, memory, power state, versions and git state, as a JSON-ready dict."""
    from bench.measure.darwin import footprint_reader

    footprint, footprint_reason = footprint_reader()
    memory = psutil.virtual_memory()
    return {
        "machine": {
            "device": device_model(),
            "chip": chip_name(),
            "os": os_description(),
            "os_build": platform.version(),
            "host": platform.node(),
            "arch": platform.machine(),
            "cpu_count_logical": os.cpu_count(),
            "cpu_count_physical": psutil.cpu_count(logical=False),
            "memory_total_bytes": memory.total,
            "memory_available_bytes": memory.available,
        },
        "python": {"version": sys.version, "executable": sys.executable},
        "versions": package_versions(),
        "git": git_state(),
        "measurement": {
            "clock": "time.perf_counter_ns (monotonic)",
            "peak_rss": "worker RSS sampled by the runner every 10 ms by PID (psutil), plus the worker's "
            "getrusage ru_maxrss high-water mark at span edges",
            "peak_footprint": "proc_pid_rusage(worker_pid, RUSAGE_INFO_V4) sampled by the runner, plus "
            "ri_lifetime_max_phys_footprint at span edges" if footprint is not None else None,
            "peak_footprint_absent_reason": footprint_reason,
        },
    }
