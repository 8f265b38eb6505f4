"""The worker: runs one case in a fresh process and streams typed events back to the runner.

    python -m bench.worker --events-fd N --lifeline-fd M --runner-pid P   (the `WorkerJob` on stdin)

A fresh process per case makes a cold load a real cold load and confines a crash or an
out-of-memory kill to one case. Events (`bench.protocol`) are JSON lines on the inherited pipe `N`;
stdout and stderr go to the case's log file. The worker measures time (spans) and memory at span
edges; the runner samples the worker's memory from outside and owns the results file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import lifeline
from bench.errors import BenchError
from bench.executor import CaseExecutor, save_png
from bench.measure.memory import SpanPeakTracker
from bench.measure.spans import MeasuringRecorder
from bench.models.variant import ResolvedModels
from bench.plugin import CasePlugin, load_plugin
from bench.protocol import (
    Event,
    Failed,
    Finished,
    Measured,
    ModelsResolved,
    PhaseStarted,
    SpansFinished,
    StageBoard,
    StageStarted,
    WorkerJob,
    WorkerStarted,
    encode,
)
from bench.schema import PROCESS_STAGE, Measurement
from bench.store import utc_timestamp
from bench.suite.case import Case

_PROGRESS_INTERVAL = 0.05  # seconds between repeated progress events for the same stage


class EventSink:
    """Events as JSON lines on a file descriptor; progress events are throttled to 20 a second.

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

    def send(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            self._note(event.stage, event.step)
        if self._fd is None:
            return
        view = memoryview(encode(event))
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def progress(self, stage: str, step: int | None) -> None:
        self._note(stage, step)
        now = time.monotonic()
        if now - self._last_sent >= _PROGRESS_INTERVAL:
            self._last_sent = now
            self.send(StageStarted(stage, step))

    def _note(self, stage: str, step: int | None) -> None:
        self.stage, self.step = stage, step
        if self._board is not None:
            self._board.set(stage, step)


def run_case(
    case: Case, executor: CaseExecutor, recorder: MeasuringRecorder, events: EventSink, image_path: Path | None = None
) -> None:
    """Prepare, cold-load, warm up and measure one case, sending spans after each phase / repeat."""
    try:
        events.send(StageStarted("prepare"))
        events.send(ModelsResolved(executor.prepare()))

        recorder.set_phase("cold")
        events.send(PhaseStarted("cold"))
        executor.load()
        events.send(SpansFinished(tuple(recorder.drain())))

        saved = False
        for phase, count in (("warmup", case.warmup), ("measured", case.repeats)):
            for repeat in range(count):
                recorder.set_phase(phase, repeat)
                events.send(PhaseStarted(phase, repeat))
                generation = executor.generate()
                events.send(SpansFinished(tuple(recorder.drain())))
                if generation.unet_calls is not None:
                    events.send(Measured((Measurement("diffusion", "unet_calls", generation.unet_calls, "count",
                                                      phase, repeat, None, utc_timestamp()),)))  # fmt: skip
                if phase == "measured" and not saved and image_path is not None and generation.image is not None:
                    save_png(generation.image, image_path)
                    saved = True
    finally:
        # The high-water marks before quality work, which loads more models (also on failure).
        events.send(Measured(process_measurements(recorder.peaks)))
        try:
            executor.close()
        except Exception:  # noqa: BLE001 - closing must not mask the case's own error
            traceback.print_exc()
    if case.quality:
        events.send(StageStarted("quality"))
        stamp = utc_timestamp()
        measured = tuple(Measurement(q.stage, q.metric, q.value, q.unit, "measured", None, q.step, stamp)
                         for q in executor.quality())  # fmt: skip
        events.send(Measured(measured))


def process_measurements(peaks: SpanPeakTracker | None) -> tuple[Measurement, ...]:
    """The worker's kernel high-water marks (its whole life so far)."""
    if peaks is None:
        return ()
    stamp = utc_timestamp()
    hwm_rss, hwm_footprint = peaks.reader.high_water()
    measured = [Measurement(PROCESS_STAGE, "peak_rss", hwm_rss, "bytes", timestamp=stamp)]
    if hwm_footprint is not None:
        measured.append(Measurement(PROCESS_STAGE, "peak_footprint", hwm_footprint, "bytes", timestamp=stamp))
    return tuple(measured)


def run_job(job: WorkerJob, events: EventSink) -> None:
    """Set up the recorder and the plugin's executor for `job`, then run its case."""
    plugin: CasePlugin = load_plugin(job.plugin)
    recorder = MeasuringRecorder(SpanPeakTracker(), on_span_start=events.progress)
    executor = plugin.create_executor(job.case, recorder, job.models or ResolvedModels(None))
    run_case(job.case, executor, recorder, events, Path(job.image_path) if job.image_path else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, help="read end of a pipe only the runner writes to")
    parser.add_argument("--runner-pid", type=int, help="the runner's PID (the worker stops when it is gone)")
    args = parser.parse_args(argv)
    events = EventSink(args.events_fd)
    try:
        events.send(WorkerStarted(os.getpid()))
        job = WorkerJob.from_json(sys.stdin.read())
        if args.lifeline_fd is not None and args.runner_pid is not None:
            lifeline.hold(args.lifeline_fd, args.runner_pid, job.case.timeout)
        events = EventSink(args.events_fd, StageBoard(Path(job.stage_board)) if job.stage_board else None)
        run_job(job, events)
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
    events.send(Finished())
    return 0


def _report(events: EventSink, kind: str, message: str) -> None:
    try:
        events.send(Failed(kind, message, events.stage, events.step))
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
