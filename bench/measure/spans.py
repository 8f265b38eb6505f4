"""`MeasuringRecorder`: the recorder the harness injects into the pipeline.

Each span measures wall time on the monotonic `perf_counter_ns` clock, keeps its start and end on
that clock (the runner's out-of-process memory samples are matched to spans by these times), and
reads memory at its edges through a `SpanPeakTracker`; the recorder tags spans with the current
phase (`cold`, `warmup`, `measured`) and repeat. It satisfies `bench.measure.recorder.Recorder`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from bench.measure.memory import PeakCell, SpanPeakTracker

SpanListener = Callable[[str, "int | None"], None]


class SpanMeasurement(NamedTuple):
    """One finished span (a NamedTuple: built on the hot path, ~8x cheaper than a frozen dataclass)."""

    stage: str
    step: int | None
    phase: str
    repeat: int | None
    start_ns: int  # time.perf_counter_ns at the span's start
    end_ns: int
    peak_rss: int | None  # from edge readings and the high-water mark (the runner adds its samples)
    peak_footprint: int | None
    # Remote calls inside the span: `seconds` has their round trips replaced by on-device time.
    host_round_trip: float | None = None  # sum of round trips of calls made directly in this span
    values: tuple[tuple[str, float, str], ...] = ()  # (metric, value, unit) facts the engine attached
    offload_ns: int = 0  # remote round trips beyond their on-device durations, not counted as latency

    @property
    def seconds(self) -> float:
        """The span's latency: its wall time, less what remote calls spent off the device."""
        return (self.end_ns - self.start_ns - self.offload_ns) / 1e9


class _Span:
    __slots__ = ("_recorder", "_stage", "_step", "_cell", "_start", "_offload", "_round_trip", "_values")

    def __init__(self, recorder: MeasuringRecorder, stage: str, step: int | None) -> None:
        self._recorder = recorder
        self._stage = stage
        self._step = step
        self._offload = 0  # ns of remote round trips beyond their on-device durations
        self._round_trip: int | None = None
        self._values: tuple[Any, ...] = ()

    def __enter__(self) -> None:
        recorder = self._recorder
        recorder.open_stages.append((self._stage, self._step))
        recorder.open_spans.append(self)
        if recorder.on_span_start is not None:
            recorder.on_span_start(self._stage, self._step)
        self._cell: PeakCell | None = recorder.peaks.open() if recorder.peaks is not None else None
        self._start = time.perf_counter_ns()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        end = time.perf_counter_ns()
        recorder = self._recorder
        peak_rss = peak_fp = None
        if self._cell is not None:
            peak_rss, peak_fp = recorder.peaks.close(self._cell)  # type: ignore[union-attr]
        if recorder.open_spans and recorder.open_spans[-1] is self:
            recorder.open_spans.pop()
        if exc_type is None:
            recorder.open_stages.pop()
            round_trip = None if self._round_trip is None else self._round_trip / 1e9
            recorder.records.append(
                SpanMeasurement(
                    self._stage, self._step, recorder.phase, recorder.repeat,
                    self._start, end, peak_rss, peak_fp, round_trip, self._values, self._offload,
                )  # fmt: skip
            )
        # On an exception the stage stays in open_stages: the worker reports where it failed.
        return False


class MeasuringRecorder:
    """Times spans and records their peak memory; the harness reads `records` after each repeat."""

    def __init__(self, peaks: SpanPeakTracker | None = None, on_span_start: SpanListener | None = None) -> None:
        self.peaks = peaks
        self.on_span_start = on_span_start
        self.phase = "cold"
        self.repeat: int | None = None
        self.records: list[SpanMeasurement] = []
        self.open_stages: list[tuple[str, int | None]] = []
        self.open_spans: list[_Span] = []

    def set_phase(self, phase: str, repeat: int | None = None) -> None:
        self.phase = phase
        self.repeat = repeat

    def span(self, stage: str, *, step: int | None = None) -> _Span:
        return _Span(self, stage, step)

    def on_device_timing(self, timing: Any) -> None:
        """A remote call (`bench.engines.annotate.DeviceTiming`) finished inside the open spans: each of
        them counts its on-device time instead of its round trip; the innermost also records the round trip."""
        if not self.open_spans:
            return
        offload = round((timing.round_trip_seconds - timing.device_seconds) * 1e9)
        for span in self.open_spans:
            span._offload += offload
        innermost = self.open_spans[-1]
        innermost._round_trip = (innermost._round_trip or 0) + round(timing.round_trip_seconds * 1e9)

    def on_span_value(self, value: Any) -> None:
        """Attach an engine-reported figure (`bench.engines.annotate.SpanValue`) to the innermost open span."""
        if self.open_spans:
            self.open_spans[-1]._values += ((value.metric, value.value, value.unit),)

    def drain(self) -> list[SpanMeasurement]:
        """The spans finished since the last drain."""
        records, self.records = self.records, []
        return records

    @property
    def failed_stage(self) -> tuple[str, int | None] | None:
        """The innermost stage left open by an exception, if any."""
        return self.open_stages[-1] if self.open_stages else None
