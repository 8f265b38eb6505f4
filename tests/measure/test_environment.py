"""Environment capture: what goes into manifest.json and every results row."""

from __future__ import annotations

import json
import platform

import pytest

from bench.measure import environment as env
from bench.measure.environment import capture_environment, power_state
from bench.schema import EnvironmentColumns

# Abridged outputs of macOS's pmset, as the macOS code paths read them (they cannot run here).
PMSET_THERM_APPLE_SILICON = """Note: No thermal warning level has been recorded
Note: No performance warning level has been recorded
Note: No CPU power status has been recorded"""
PMSET_THERM_THROTTLED = """CPU_Scheduler_Limit \t= 100
CPU_Available_CPUs \t= 8
CPU_Speed_Limit \t= 62"""
PMSET_LOW_POWER = """System-wide power settings:
Currently in use:
 standby              1
 lowpowermode         1
 sleep                1 (sleep prevented by powerd)"""
PMSET_HIGH_POWER = """Currently in use:
 standby              1
 powermode            2
 displaysleep         10"""


def test_environment_is_complete_and_json_ready() -> None:
    environment = capture_environment()
    json.dumps(environment)
    machine = environment["machine"]
    for key in ("device", "chip", "os", "host", "cpu_count_logical", "memory_total_bytes"):
        assert machine[key], key
    assert machine["host"] == platform.node()
    versions = environment["versions"]
    for key in ("python", "numpy", "coremltools", "bench"):
        assert versions[key], key
    assert environment["git"]["available"] in (True, False)
    if environment["git"]["available"]:
        assert len(environment["git"]["commit"]) == 40
    measurement = environment["measurement"]
    if platform.system() != "Darwin":
        assert measurement["peak_footprint"] is None and "Darwin" in measurement["peak_footprint_absent_reason"]
    columns = EnvironmentColumns.from_environment(environment)
    assert columns.device == environment["machine"]["device"] and columns.host == environment["machine"]["host"]


def test_power_state_says_why_when_unknown() -> None:
    state = power_state()
    for key in ("thermal", "low_power_mode"):
        assert isinstance(state[key]["available"], bool)
        if not state[key]["available"]:
            assert state[key]["reason"]


@pytest.fixture()
def macos(monkeypatch: pytest.MonkeyPatch):
    """Pretend to be macOS and answer commands from a table."""
    outputs: dict[tuple[str, ...], str | None] = {}
    monkeypatch.setattr(env.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(env, "_run", lambda command, **kwargs: outputs.get(tuple(command)))
    return outputs


def test_macos_thermal_state_from_pmset(macos) -> None:
    macos[("pmset", "-g", "therm")] = PMSET_THERM_APPLE_SILICON
    state = env.thermal_state()
    assert state["available"] and state["thermal_warning"] == "none"
    macos[("pmset", "-g", "therm")] = PMSET_THERM_THROTTLED
    state = env.thermal_state()
    assert state["CPU_Speed_Limit"] == 62 and state["CPU_Available_CPUs"] == 8
    assert "thermal_warning" not in state
    macos[("pmset", "-g", "therm")] = None
    assert env.thermal_state() == {"available": False, "reason": "pmset -g therm failed"}


def test_macos_low_power_mode_from_pmset(macos) -> None:
    macos[("pmset", "-g")] = PMSET_LOW_POWER
    assert env.low_power_mode() == {"available": True, "enabled": True, "source": "pmset -g"}
    macos[("pmset", "-g")] = PMSET_LOW_POWER.replace("lowpowermode         1", "lowpowermode         0")
    assert env.low_power_mode()["enabled"] is False
    macos[("pmset", "-g")] = PMSET_HIGH_POWER
    state = env.low_power_mode()
    assert state["power_mode"] == "high" and state["enabled"] is False
    macos[("pmset", "-g")] = "Currently in use:\n standby 1"
    state = env.low_power_mode()
    assert not state["available"] and "lowpowermode" in state["reason"]
