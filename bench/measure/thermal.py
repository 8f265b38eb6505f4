"""Thermal state on macOS, in a way that works on Apple silicon.

`pmset -g therm` prints CPU speed limits only on Intel Macs. Two sources work on every Mac:

- the notify(3) state `com.apple.system.thermalpressurelevel` (libSystem's `notify_register_check` /
  `notify_get_state`): OSThermalPressureLevel, on macOS 0 nominal, 1 moderate, 2 heavy, 3 trapping,
  4 sleeping (libkern/OSThermalNotification.h);
- `NSProcessInfo.processInfo.thermalState` (Foundation): 0 nominal, 1 fair, 2 serious, 3 critical.

No Python library wraps either call, hence ctypes. Both are read at run start, run end and at the
start and end of every case; off macOS they are absent with the reason.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Any

PRESSURE_NOTIFICATION = b"com.apple.system.thermalpressurelevel"
#: OSThermalPressureLevel on macOS (TARGET_OS_OSX).
PRESSURE_LEVELS = ("nominal", "moderate", "heavy", "trapping", "sleeping")
#: NSProcessInfoThermalState.
PROCESS_INFO_STATES = ("nominal", "fair", "serious", "critical")
_FOUNDATION = "/System/Library/Frameworks/Foundation.framework/Foundation"


def read_pressure_level(libsystem: Any) -> int:
    """The thermal pressure level through notify(3); raises OSError when a call fails."""
    token = ctypes.c_int(0)
    libsystem.notify_register_check.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    libsystem.notify_register_check.restype = ctypes.c_uint32
    libsystem.notify_get_state.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
    libsystem.notify_get_state.restype = ctypes.c_uint32
    status = libsystem.notify_register_check(PRESSURE_NOTIFICATION, ctypes.pointer(token))
    if status != 0:
        raise OSError(f"notify_register_check({PRESSURE_NOTIFICATION.decode()}) returned {status}")
    try:
        state = ctypes.c_uint64(0)
        status = libsystem.notify_get_state(token.value, ctypes.pointer(state))
        if status != 0:
            raise OSError(f"notify_get_state returned {status}")
        return int(state.value)
    finally:
        libsystem.notify_cancel(token.value)


def read_process_info_state(libobjc: Any) -> int:
    """`[[NSProcessInfo processInfo] thermalState]` through the Objective-C runtime."""
    libobjc.objc_getClass.argtypes = [ctypes.c_char_p]
    libobjc.objc_getClass.restype = ctypes.c_void_p
    libobjc.sel_registerName.argtypes = [ctypes.c_char_p]
    libobjc.sel_registerName.restype = ctypes.c_void_p
    send = libobjc.objc_msgSend
    send.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    cls = libobjc.objc_getClass(b"NSProcessInfo")
    if not cls:
        raise OSError("NSProcessInfo is not loaded (Foundation missing)")
    send.restype = ctypes.c_void_p
    info = send(cls, libobjc.sel_registerName(b"processInfo"))
    send.restype = ctypes.c_long
    return int(send(info, libobjc.sel_registerName(b"thermalState")))


def _name(table: tuple[str, ...], level: int) -> str:
    return table[level] if 0 <= level < len(table) else f"level {level}"


def darwin_thermal_state(libsystem: Any = None, libobjc: Any = None) -> dict[str, Any]:
    """Both readings where they work, each failure with its reason."""
    state: dict[str, Any] = {"available": False}
    try:
        if libsystem is None:
            libsystem = ctypes.CDLL(ctypes.util.find_library("System") or "/usr/lib/libSystem.B.dylib")
        level = read_pressure_level(libsystem)
        state.update(available=True, pressure_level=level, pressure=_name(PRESSURE_LEVELS, level),
                     pressure_source="notify com.apple.system.thermalpressurelevel")  # fmt: skip
    except (OSError, AttributeError) as error:
        state["pressure_reason"] = f"thermal pressure level unreadable: {error}"
    try:
        if libobjc is None:
            ctypes.CDLL(_FOUNDATION)  # registers NSProcessInfo with the runtime
            libobjc = ctypes.CDLL(ctypes.util.find_library("objc") or "/usr/lib/libobjc.A.dylib")
        value = read_process_info_state(libobjc)
        state.update(available=True, process_info_state=value, process_info=_name(PROCESS_INFO_STATES, value),
                     process_info_source="NSProcessInfo.thermalState")  # fmt: skip
    except (OSError, AttributeError) as error:
        state["process_info_reason"] = f"NSProcessInfo.thermalState unreadable: {error}"
    if not state["available"]:
        state["reason"] = "; ".join(v for k, v in state.items() if k.endswith("_reason"))
    return state


def thermal_rows(when: str) -> list[dict[str, Any]]:
    """Results rows (stage `process`) with the thermal readings now; none off macOS.

    `when` is `start` or `end` of the case: metrics `thermal_pressure_<when>` (0 nominal .. 4 sleeping)
    and `thermal_state_<when>` (NSProcessInfo: 0 nominal .. 3 critical).
    """
    if platform.system() != "Darwin":
        return []
    state = darwin_thermal_state()
    base = {"phase": None, "repeat": None, "stage": "process", "step": None}
    rows = []
    if "pressure_level" in state:
        rows.append({**base, "metric": f"thermal_pressure_{when}", "value": state["pressure_level"], "unit": "level"})
    if "process_info_state" in state:
        rows.append({**base, "metric": f"thermal_state_{when}", "value": state["process_info_state"], "unit": "level"})
    return rows
