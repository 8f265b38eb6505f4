"""The worker: runs one case in a fresh process and streams events back to the runner.

    python -m bench.worker --events-fd N   (the case arrives as JSON on stdin)

A fresh process per case makes a cold load a real cold load and confines a crash or an
out-of-memory kill to one case. Events are JSON lines on the inherited pipe `N` (stdout and
stderr go to the case's log file): `meta`, `stage` (progress), `rows` (measurements, sent after
each repeat), `error`, `done`. The runner owns the results file; the worker never writes it.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.case_exec import (
    DEFAULT_EXECUTOR,
    CaseExecutor,
    ExecutorFactory,
    Generation,
    load_executor_factory,
    model_set_from_dict,
    save_png,
)
from bench.errors import BenchError
from bench.measure.memory import MemorySampler
from bench.measure.recorder import STEP_STAGES
from bench.measure.spans import MeasuringRecorder, SpanMeasurement
from bench.measure.thermal import thermal_rows
from bench.store import utc_timestamp
from bench.suite.case import Case

#: Stages whose spans together make one denoising step (DESIGN.md: iter/s = 1 / median step time).
_PROGRESS_INTERVAL = 0.05  # seconds between repeated progress events for the same stage


class StageBoard:
    """The current stage and step in a small shared file, read by the runner after a crash.

    A SIGKILLed worker (out of memory) cannot say where it died; writing the stage into a mapped
    file at every span start costs well under a microsecond, far less than a pipe write.
    """

    SIZE = 256

    def __init__(self, path: Path) -> None:
        with open(path, "wb") as handle:
            handle.write(b"\0" * self.SIZE)
        self._file = open(path, "r+b")
        self._map = mmap.mmap(self._file.fileno(), self.SIZE)
        self._encoded: dict[tuple[str, int | None], bytes] = {}

    def set(self, stage: str, step: int | None) -> None:
        data = self._encoded.get((stage, step))
        if data is None:
            data = f"{stage}\t{'' if step is None else step}\0".encode()[: self.SIZE]
            self._encoded[(stage, step)] = data
        self._map[: len(data)] = data

    @staticmethod
    def read(path: Path) -> tuple[str | None, int | None]:
        """(stage, step) last written to the board at `path`, or (None, None)."""
        try:
            raw = Path(path).read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            return None, None
        stage, _, step = raw.partition("\t")
        return (stage or None), (int(step) if step.isdigit() else None)


class EventSink:
    """JSON lines on a file descriptor; progress events are throttled to 20 a second.

    Progress is reported at the start of every span, inside the parent span's timing, so it must
    cost next to nothing: attribute stores, a clock read, and a pipe write only every 50 ms. The
    exact stage goes to the `StageBoard` (if any) for crash reports.
    """

    def __init__(self, fd: int | None, board: StageBoard | None = None) -> None:
        self._fd = fd
        self._board = board
        self._last_sent = 0.0
        self.stage: str | None = None
        self.step: int | None = None

    def send(self, event: dict[str, Any]) -> None:
        if event.get("event") == "stage":
            self._note(event.get("stage"), event.get("step"))
        if self._fd is None:
            return
        data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def progress(self, stage: str, step: int | None) -> None:
        self._note(stage, step)
        now = time.monotonic()
        if now - self._last_sent >= _PROGRESS_INTERVAL:
            self._last_sent = now
            self.send({"event": "stage", "stage": stage, "step": step})

    def _note(self, stage: Any, step: Any) -> None:
        self.stage, self.step = stage, step
        if self._board is not None:
            self._board.set(stage, step)


def span_rows(spans: Sequence[SpanMeasurement], timestamp: str) -> list[dict[str, Any]]:
    """Tidy rows for finished spans: latency, peak_rss and (macOS) peak_footprint."""
    rows: list[dict[str, Any]] = []
    for span in spans:
        base = {"phase": span.phase, "repeat": span.repeat, "stage": span.stage, "step": span.step, "timestamp": timestamp}
        rows.append({**base, "metric": "latency", "value": span.seconds, "unit": "s"})
        if span.peak_rss is not None:
            rows.append({**base, "metric": "peak_rss", "value": span.peak_rss, "unit": "bytes"})
        if span.peak_footprint is not None:
            rows.append({**base, "metric": "peak_footprint", "value": span.peak_footprint, "unit": "bytes"})
        if span.host_round_trip is not None:  # remote device: latency above is the on-device time
            rows.append({**base, "metric": "host_round_trip", "value": span.host_round_trip, "unit": "s"})
        rows.extend({**base, "metric": v.metric, "value": v.value, "unit": v.unit} for v in span.values)
    return rows


def step_times(spans: Sequence[SpanMeasurement]) -> list[float]:
    """Seconds per denoising step: the step's unet (or refiner) spans plus its scheduler span."""
    per_step: dict[int, float] = {}
    for span in spans:
        if span.stage in STEP_STAGES and span.step is not None:
            per_step[span.step] = per_step.get(span.step, 0.0) + span.seconds
    return [per_step[step] for step in sorted(per_step)]


def repeat_rows(
    spans: Sequence[SpanMeasurement], generation: Generation, phase: str, repeat: int, timestamp: str
) -> list[dict[str, Any]]:
    """Per-repeat figures derived from the spans: iter/s (1 / median step time) and UNet calls."""
    base = {"phase": phase, "repeat": repeat, "stage": "diffusion", "step": None, "timestamp": timestamp}
    rows: list[dict[str, Any]] = []
    times = step_times(spans)
    if times:
        median = statistics.median(times)
        if median > 0:
            rows.append({**base, "metric": "iter_per_s", "value": 1.0 / median, "unit": "iter/s"})
    if generation.unet_calls is not None:
        rows.append({**base, "metric": "unet_calls", "value": generation.unet_calls, "unit": "count"})
    return rows


def run_case(
    case: Case,
    factory: ExecutorFactory,
    events: EventSink,
    image_path: Path | None = None,
    **resolved: Any,
) -> None:
    """Prepare, cold-load, warm up and measure one case, sending rows after each phase/repeat.

    `resolved` holds what the runner resolved for the executor (`model_set`, `baseline_set`).
    """
    sampler = MemorySampler().start()
    recorder = MeasuringRecorder(sampler, on_span_start=events.progress)
    executor: CaseExecutor | None = None
    try:
        executor = factory(case, recorder, **resolved)
        events.send({"event": "stage", "stage": "prepare", "step": None})
        meta = executor.prepare()
        events.send({"event": "meta", "meta": asdict(meta), "footprint": sampler.reader.has_footprint})
        thermal_start = _stamped(thermal_rows("start"))  # macOS only
        if thermal_start:
            events.send({"event": "rows", "rows": thermal_start})

        recorder.set_phase("cold")
        events.send({"event": "phase", "phase": "cold", "repeat": None})
        executor.load()
        events.send({"event": "rows", "rows": span_rows(recorder.drain(), utc_timestamp())})

        saved = False
        for phase, count in (("warmup", case.warmup), ("measured", case.repeats)):
            for repeat in range(count):
                recorder.set_phase(phase, repeat)
                events.send({"event": "phase", "phase": phase, "repeat": repeat})
                generation = executor.generate()
                spans = recorder.drain()
                stamp = utc_timestamp()
                rows = span_rows(spans, stamp) + repeat_rows(spans, generation, phase, repeat, stamp)
                events.send({"event": "rows", "rows": rows})
                if phase == "measured" and not saved and image_path is not None and generation.image is not None:
                    save_png(generation.image, image_path)
                    saved = True
    finally:
        sampler.stop()
        # The high-water marks before quality work, which loads more models (also on failure).
        events.send({"event": "rows", "rows": process_rows(sampler)})
        if executor is not None:
            try:
                executor.close()
            except Exception:  # noqa: BLE001 - closing must not mask the case's own error
                traceback.print_exc()
    if case.quality:
        events.send({"event": "stage", "stage": "quality", "step": None})
        stamp = utc_timestamp()
        rows = [
            {"phase": "measured", "repeat": None, "stage": q.stage, "step": None, "metric": q.metric,
             "value": q.value, "unit": q.unit, "timestamp": stamp}
            for q in executor.quality()
        ]  # fmt: skip
        events.send({"event": "rows", "rows": rows})


def process_rows(sampler: MemorySampler) -> list[dict[str, Any]]:
    """Whole-process figures: the kernel high-water marks and what the sampler cost."""
    stamp = utc_timestamp()
    base = {"phase": None, "repeat": None, "stage": "process", "step": None, "timestamp": stamp}
    hwm_rss, hwm_footprint = sampler.reader.high_water()
    rows = [{**base, "metric": "peak_rss", "value": hwm_rss, "unit": "bytes"}]
    if hwm_footprint is not None:
        rows.append({**base, "metric": "peak_footprint", "value": hwm_footprint, "unit": "bytes"})
    rows.extend(_stamped(thermal_rows("end")))  # macOS only
    rows.append({**base, "metric": "sampler_cpu_share", "value": sampler.cpu_share, "unit": "fraction"})
    rows.append({**base, "metric": "sampler_samples", "value": sampler.samples, "unit": "count"})
    return rows


def _stamped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stamp = utc_timestamp()
    return [{**row, "timestamp": stamp} for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    events = EventSink(args.events_fd)
    try:
        payload = json.load(sys.stdin)
        board = payload.get("stage_board")
        events = EventSink(args.events_fd, StageBoard(Path(board)) if board else None)
        case = Case.from_dict(payload["case"])
        factory = load_executor_factory(payload.get("executor") or DEFAULT_EXECUTOR)
        image = payload.get("image_path")
        resolved = {}
        if payload.get("model_set"):
            resolved["model_set"] = model_set_from_dict(payload["model_set"])
            baseline = payload.get("baseline_set")
            resolved["baseline_set"] = model_set_from_dict(baseline) if baseline else None
        run_case(case, factory, events, Path(image) if image else None, **resolved)
    except BenchError as error:
        _report(events, type(error).__name__, str(error))
        return 3
    except MemoryError:
        _report(events, "MemoryError", "out of memory (MemoryError)")
        return 4
    except BaseException as error:  # noqa: BLE001 - anything else is a crash of this case only
        traceback.print_exc()
        message = f"{type(error).__name__}: {error}".strip().splitlines()[0] if str(error) else type(error).__name__
        _report(events, type(error).__name__, message)
        return 1
    events.send({"event": "done"})
    return 0


def _report(events: EventSink, kind: str, message: str) -> None:
    try:
        events.send({"event": "error", "kind": kind, "message": message, "stage": events.stage, "step": events.step})
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
