"""Core ML optimization hints: suite strings -> coremltools' enums, refused where the OS lacks them.

coremltools checks `optimization_hints` itself (`coremltools.models.model._verify_optimization_hint_input`,
8.0-9.0): values must be `ct.ReshapeFrequency` / `ct.SpecializationStrategy` members (and a bool for
`allowLowPrecisionAccumulationOnGPU`, a key 9.0 added), and any hint raises below macOS 15. Suites are
TOML, so they name the values as strings; this module maps them and fails early with a message that
names the key and the allowed values. On a device, the ModelRunner app takes reshapeFrequency and
specializationStrategy by member name (iOS 18 for the latter); it has no allowLowPrecision key.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from bench.errors import BenchError

#: coremltools key -> (accepted spellings of the key, coremltools enum class name or None for a bool).
HINT_KEYS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "reshapeFrequency": (("reshapeFrequency", "reshape_frequency"), "ReshapeFrequency"),
    "specializationStrategy": (("specializationStrategy", "specialization_strategy"), "SpecializationStrategy"),
    "allowLowPrecisionAccumulationOnGPU": (
        ("allowLowPrecisionAccumulationOnGPU", "allow_low_precision_accumulation_on_gpu"), None),
}
#: The first OS versions where Core ML takes optimization hints through coremltools / ModelRunner.
MIN_OS_FOR_HINTS = {"macOS": (15, 0), "iOS": (18, 0), "iPadOS": (18, 0)}


def parse_version(text: str) -> tuple[int, ...]:
    """'14.4.1' -> (14, 4, 1); empty or unparsable parts end the tuple."""
    parts: list[int] = []
    for piece in str(text).split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def coreml_hints(
    ct: ModuleType, hints: Mapping[str, Any] | None, *, os_name: str, os_version: str, remote: bool = False
) -> dict[str, Any] | None:
    """coremltools' `optimization_hints` dict for `hints` (None or empty -> None), or a BenchError."""
    if not hints:
        return None
    if not isinstance(hints, Mapping):
        raise BenchError(f"optimization_hints must be a table of hint = value, got {hints!r}")
    needed = MIN_OS_FOR_HINTS.get(os_name, (15, 0))
    if parse_version(os_version) < needed:
        raise BenchError(
            f"optimization_hints need {os_name} {'.'.join(map(str, needed))} or later "
            f"(Core ML's MLOptimizationHints); this {'device' if remote else 'machine'} runs {os_name} {os_version}"
        )
    spelling = {alias: key for key, (aliases, _) in HINT_KEYS.items() for alias in aliases}
    result: dict[str, Any] = {}
    for given, value in hints.items():
        key = spelling.get(given)
        if key is None:
            raise BenchError(f"unknown optimization hint {given!r}; known: {', '.join(HINT_KEYS)}")
        enum_name = HINT_KEYS[key][1]
        if enum_name is None:
            if remote:
                raise BenchError(f"optimization hint {key} is not supported on a remote device (ModelRunner has no such key)")
            if not hasattr(ct, "ReshapeFrequency") or parse_version(getattr(ct, "__version__", "0")) < (9, 0):
                raise BenchError(f"optimization hint {key} needs coremltools >= 9.0")
            if not isinstance(value, bool):
                raise BenchError(f"optimization hint {key} must be true or false, got {value!r}")
            result[key] = value
            continue
        enum = getattr(ct, enum_name)
        if isinstance(value, enum):
            result[key] = value
            continue
        members = {member.name.lower(): member for member in enum}
        member = members.get(str(value).lower()) if isinstance(value, str) else None
        if member is None:
            raise BenchError(
                f"optimization hint {key} = {value!r} is not one of {', '.join(m.name for m in enum)} (ct.{enum_name})"
            )
        result[key] = member
    return result
