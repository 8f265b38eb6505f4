"""Environment capture: what goes into manifest.json and every results row."""

from __future__ import annotations

import json
import platform

from bench.measure.environment import capture_environment, power_state, row_columns


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
    assert set(row_columns(environment)) == {"device", "chip", "os", "host"}


def test_power_state_says_why_when_unknown() -> None:
    state = power_state()
    for key in ("thermal", "low_power_mode"):
        assert isinstance(state[key]["available"], bool)
        if not state[key]["available"]:
            assert state[key]["reason"]
