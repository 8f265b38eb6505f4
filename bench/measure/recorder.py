"""The recorder protocol the pipeline reports its stages to.

The pipeline has no timing code of its own: it wraps every stage in `recorder.span(stage, step=...)`
and the harness injects a recorder that measures wall time and peak memory. Stage names are the ones
the README's "Results" section lists (`load/<part>`, `first_predict/<part>`, `tokenize`, `text_encoder`, `unet`, ...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Stages recorded once per denoising step (with `step=`); every other stage is recorded once.
STEP_STAGES: tuple[str, ...] = ("unet", "refiner", "scheduler")


@runtime_checkable
class Recorder(Protocol):
    """Receives one span per pipeline stage (and per step for per-step stages)."""

    def span(self, stage: str, *, step: int | None = None) -> AbstractContextManager[None]: ...


class NullRecorder:
    """A recorder that records nothing: the default when nobody is measuring."""

    def span(self, stage: str, *, step: int | None = None) -> AbstractContextManager[None]:
        return nullcontext()


@dataclass(frozen=True)
class SpanRecord:
    """One finished span: stage, step and wall time from a monotonic clock."""

    stage: str
    step: int | None
    seconds: float


class TimingRecorder:
    """Records the wall time of each span in order; enough for tests and quick timings."""

    def __init__(self) -> None:
        self.records: list[SpanRecord] = []

    @contextmanager
    def span(self, stage: str, *, step: int | None = None) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.records.append(SpanRecord(stage, step, (time.perf_counter_ns() - start) / 1e9))

    def stages(self) -> list[str]:
        """Stage names in the order their spans finished."""
        return [r.stage for r in self.records]
