"""The worker's measurement logic in-process: phases, repeats, derived rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure.memory import SpanPeakTracker
from bench.measure.spans import MeasuringRecorder
from bench.protocol import (
    Measured,
    ModelsResolved,
    PhaseStarted,
    SpansFinished,
    StageStarted,
    WorkerJob,
    decode,
    encode,
)
from bench.schema import ModelLabels
from bench.suite.case import Case
from bench.worker import EventSink, run_case


class Capture(EventSink):
    def __init__(self) -> None:
        super().__init__(None)
        self.events: list[Any] = []

    def send(self, event: Any) -> None:
        self.events.append(decode(encode(event)))  # through the wire format, as the runner reads it


def test_job_round_trips_through_json() -> None:
    case = Case(suite="s", model="m", steps=2, quality=True)
    job = WorkerJob(case, "mod:PLUGIN", None, "/tmp/board", "/tmp/image.png")
    assert WorkerJob.from_json(job.to_json()) == job


def test_run_case_phases_in_process(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fake_executor import FakeExecutor

    case = Case(suite="s", model="fake-ok", steps=2, warmup=2, repeats=3, quality=True)
    sink = Capture()
    recorder = MeasuringRecorder(SpanPeakTracker(), on_span_start=sink.progress)
    run_case(case, FakeExecutor(case, recorder), recorder, sink, tmp_path / "image.png")
    kinds = [type(e) for e in sink.events]
    assert kinds[:3] == [StageStarted, ModelsResolved, PhaseStarted]
    assert sink.events[1].labels == ModelLabels("SPLIT_EINSUM", "float16", 64, 2)
    phases = [(e.phase, e.repeat) for e in sink.events if isinstance(e, PhaseStarted)]
    assert phases == [("cold", None), ("warmup", 0), ("warmup", 1), ("measured", 0), ("measured", 1), ("measured", 2)]
    spans = [s for e in sink.events if isinstance(e, SpansFinished) for s in e.spans]
    e2e = [(s.phase, s.repeat) for s in spans if s.stage == "end_to_end"]
    assert e2e == [("warmup", 0), ("warmup", 1), ("measured", 0), ("measured", 1), ("measured", 2)]
    assert {s.phase for s in spans if s.stage.startswith("load/")} == {"cold"}
    assert all(s.end_ns >= s.start_ns and s.peak_rss > 0 for s in spans)
    step = next(s for s in spans if s.stage == "unet" and s.step == 1 and s.phase == "measured")
    assert step.seconds == (step.end_ns - step.start_ns) / 1e9
    measured = [m for e in sink.events if isinstance(e, Measured) for m in e.measurements]
    assert {m.metric for m in measured if m.stage == "process"} == {"peak_rss"}
    assert [(m.phase, m.repeat, m.value) for m in measured if m.metric == "unet_calls"] == [
        ("warmup", 0, 2), ("warmup", 1, 2), ("measured", 0, 2), ("measured", 1, 2), ("measured", 2, 2)]
    assert [(m.value, m.phase) for m in measured if m.metric == "psnr"] == [(42.0, "measured")]
    assert (tmp_path / "image.png").exists()
