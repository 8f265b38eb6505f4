"""Thermal state through notify(3) and NSProcessInfo, with fake libSystem / libobjc (macOS-only calls)."""

from __future__ import annotations

import ctypes

import pytest

from bench.measure import thermal


class Function:
    """A C function stand-in: takes argtypes / restype like a ctypes function, runs `body`."""

    def __init__(self, body):
        self.body, self.argtypes, self.restype = body, None, None

    def __call__(self, *args):
        return self.body(*args)


class LibSystem:
    def __init__(self, level: int, register_status: int = 0):
        self.cancelled = []

        def register(name, token):
            assert name == b"com.apple.system.thermalpressurelevel" and isinstance(token.contents, ctypes.c_int)
            token.contents.value = 42
            return register_status

        def get_state(token, state):
            assert token == 42 and isinstance(state.contents, ctypes.c_uint64)
            state.contents.value = level
            return 0

        self.notify_register_check = Function(register)
        self.notify_get_state = Function(get_state)
        self.notify_cancel = Function(self.cancelled.append)


class LibObjC:
    def __init__(self, state: int):
        selectors = {}
        self.objc_getClass = Function(lambda name: 1 if name == b"NSProcessInfo" else 0)
        self.sel_registerName = Function(lambda name: selectors.setdefault(name, 100 + len(selectors)))

        def send(receiver, selector):
            if receiver == 1 and selector == selectors[b"processInfo"]:
                return 2  # the shared NSProcessInfo instance
            if receiver == 2 and selector == selectors[b"thermalState"]:
                return state
            raise AssertionError((receiver, selector))

        self.objc_msgSend = Function(send)


@pytest.mark.parametrize(("level", "name"), [(0, "nominal"), (2, "heavy"), (4, "sleeping")])
def test_pressure_level_and_process_info_state(level, name):
    libsystem = LibSystem(level)
    state = thermal.darwin_thermal_state(libsystem, LibObjC(1))
    assert state["available"] and state["pressure_level"] == level and state["pressure"] == name
    assert state["process_info_state"] == 1 and state["process_info"] == "fair"
    assert libsystem.cancelled == [42]  # the registration is released


def test_a_failing_source_is_absent_with_its_reason():
    state = thermal.darwin_thermal_state(LibSystem(0, register_status=1000000), LibObjC(3))
    assert "pressure_level" not in state and "returned 1000000" in state["pressure_reason"]
    assert state["available"] and state["process_info"] == "critical"


def test_no_rows_off_macos(monkeypatch):
    monkeypatch.setattr(thermal.platform, "system", lambda: "Linux")
    assert thermal.thermal_rows("start") == []


def test_rows_on_macos(monkeypatch):
    monkeypatch.setattr(thermal.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(thermal, "darwin_thermal_state",
                        lambda: {"available": True, "pressure_level": 1, "process_info_state": 0})
    rows = thermal.thermal_rows("end")
    assert [(r["stage"], r["metric"], r["value"]) for r in rows] == [
        ("process", "thermal_pressure_end", 1), ("process", "thermal_state_end", 0)]
