"""`MeasuringRecorder`: the recorder the harness injects into the pipeline.

Each span measures wall time on the monotonic `perf_counter_ns` clock, keeps its start and end on
that clock (the runner's out-of-process memory samples are matched to spans by these times), and
reads memory at its edges through a `SpanPeakTracker`; the recorder tags spans with the current
phase (`cold`, `warmup`, `measured`) and repeat. It satisfies `bench.measure.recorder.Recorder`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

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

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class _Span:
    __slots__ = ("_recorder", "_stage", "_step", "_cell", "_start")

    def __init__(self, recorder: MeasuringRecorder, stage: str, step: int | None) -> None:
        self._recorder = recorder
        self._stage = stage
        self._step = step

    def __enter__(self) -> None:
        recorder = self._recorder
        recorder.open_stages.append((self._stage, self._step))
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
        if exc_type is None:
            recorder.open_stages.pop()
            recorder.records.append(
                SpanMeasurement(
                    self._stage, self._step, recorder.phase, recorder.repeat,
                    self._start, end, peak_rss, peak_fp,
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

    def set_phase(self, phase: str, repeat: int | None = None) -> None:
        self.phase = phase
        self.repeat = repeat

    def span(self, stage: str, *, step: int | None = None) -> _Span:
        return _Span(self, stage, step)

    def drain(self) -> list[SpanMeasurement]:
        """The spans finished since the last drain."""
        records, self.records = self.records, []
        return records

    @property
    def failed_stage(self) -> tuple[str, int | None] | None:
        """The innermost stage left open by an exception, if any."""
        return self.open_stages[-1] if self.open_stages else None
