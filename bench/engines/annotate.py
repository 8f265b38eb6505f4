"""What an engine knows about the span it runs in, passed to whoever is measuring.

Engines sit below the recorder: the pipeline opens a span (`load/unet`, `unet` step 3) and calls
the engine inside it. Two things only the engine knows belong to that span:

- `DeviceTiming`: a model that runs on another device (an iPhone through coremltools' remote
  device) measures each load / prediction *on the device*; the host only sees the round trip,
  transfers included. The measuring recorder then reports the span's latency with that round trip
  replaced by the on-device duration, and the round trip as a row of its own (`host_round_trip`).
- `SpanValue`: a fact about the span (`compile_cache_hit`, `load_cache_warm`), a row of its own.

The case executor installs its recorder with `listen` (a recorder without `on_device_timing` /
`on_span_value` ignores them); with no listener (tests, notebooks) reports are dropped. This module
imports nothing from bench: engines report here, and the measuring recorder needs only its duck type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class DeviceTiming:
    """One remote call: its duration measured on the device and the host's wall time around it."""

    device_seconds: float
    round_trip_seconds: float

    @property
    def host_overhead_seconds(self) -> float:
        """Transfer and host-side work: what the round trip adds to the on-device duration."""
        return self.round_trip_seconds - self.device_seconds


@dataclass(frozen=True)
class SpanValue:
    """A figure attached to the innermost open span (one results row: stage of that span)."""

    metric: str
    value: float
    unit: str


class AnnotationListener(Protocol):
    def on_device_timing(self, timing: DeviceTiming) -> None: ...

    def on_span_value(self, value: SpanValue) -> None: ...


_listener: AnnotationListener | None = None


def listen(listener: AnnotationListener | Any) -> AnnotationListener | Any:
    """Route reports to `listener` (None: drop them); returns the previous listener."""
    global _listener
    previous, _listener = _listener, listener
    return previous


def device_timing(timing: DeviceTiming) -> None:
    report = getattr(_listener, "on_device_timing", None)
    if report is not None:
        report(timing)


def span_value(metric: str, value: float, unit: str) -> None:
    report = getattr(_listener, "on_span_value", None)
    if report is not None:
        report(SpanValue(metric, float(value), unit))
