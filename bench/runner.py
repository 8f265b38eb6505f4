"""The runner: cases -> one worker process each -> rows appended to results.csv.

Each case runs in `python -m bench.worker`, started in its own session (process group), so a
timeout kills the worker and anything it started, and Ctrl-C at the terminal reaches only the
runner, which then stops the worker and leaves the results file consistent. While the worker runs,
the runner samples its memory from outside (`ProcessSampler`) and reads its events
(`bench.protocol`); when the case ends it gives every span its sampled peak, builds the rows
(`bench.schema.build_row`) and appends them in one flushed, fsynced write, closed by a `case` row
carrying the status (`ok`, `error`, `timeout`, `skipped`).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from bench.errors import Interrupted
from bench.measure.environment import power_state
from bench.measure.memory import ProcessSampler, attribute_peaks, combine_peaks
from bench.measure.spans import SpanMeasurement
from bench.model_prep import PreparedModel, resolved_for
from bench.models.variant import ResolvedModels
from bench.plugin import DEFAULT_PLUGIN
from bench.protocol import (
    Event,
    Failed,
    Finished,
    Measured,
    ModelsResolved,
    ProtocolError,
    SpansFinished,
    StageBoard,
    StageStarted,
    WorkerJob,
    WorkerStarted,
    decode,
)
from bench.schema import (
    OUTCOME_STAGE,
    PROCESS_STAGE,
    CaseContext,
    EnvironmentColumns,
    Measurement,
    ModelLabels,
    Outcome,
    build_row,
)
from bench.store import RESULTS_FILE, ResultsWriter, completed_case_ids, utc_timestamp
from bench.suite.case import Case
from bench.validity import Validity, judge

_EOF = object()
_KILL_GRACE = 5.0  # seconds to wait for a killed worker to be reaped


@dataclass
class WorkerResult:
    """What one worker process produced, with its memory samples already attributed to its spans."""

    status: str  # ok, error, timeout, interrupted
    error: str | None
    measurements: list[Measurement]
    labels: ModelLabels | None
    wall_seconds: float
    returncode: int | None
    interrupted_by: Interrupted | None = None  # the signal that stopped the run during this case


@dataclass
class CaseOutcome:
    """One case's end state, as the progress display and the summary see it."""

    case: Case
    status: str  # ok, error, timeout, skipped, interrupted, or "resumed" (already complete; not run again)
    error: str | None = None
    wall_seconds: float | None = None
    rows: int = 0
    validity: Validity | None = None


class ProgressListener(Protocol):
    def run_started(self, cases: Sequence[Case], already_done: int) -> None: ...

    def case_started(self, index: int, case: Case) -> None: ...

    def case_event(self, case: Case, event: Event) -> None: ...

    def case_finished(self, index: int, outcome: CaseOutcome) -> None: ...

    def run_finished(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def run_started(self, cases: Sequence[Case], already_done: int) -> None:
        pass

    def case_started(self, index: int, case: Case) -> None:
        pass

    def case_event(self, case: Case, event: Event) -> None:
        pass

    def case_finished(self, index: int, outcome: CaseOutcome) -> None:
        pass

    def run_finished(self) -> None:
        pass


# --------------------------------------------------------------------------- one worker


def _describe_signal(returncode: int) -> str:
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"worker killed by {name} (out of memory? the OOM killer and jetsam send SIGKILL)"
    return f"worker killed by {name}"


def _where(stage: str | None, step: int | None) -> str:
    if not stage:
        return ""
    return f" during {stage}" + (f" step {step}" if step is not None else "")


def _last_log_line(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def span_measurements(spans: Sequence[SpanMeasurement], sampler: ProcessSampler | None) -> list[Measurement]:
    """Latency, peak_rss, peak_footprint and memory_samples rows of finished spans, plus what the
    engine attached to them (a remote device's `host_round_trip`, cache facts).

    A span's peak is the larger of what the worker saw at its edges (with the high-water marks) and
    the largest of the runner's samples taken inside it. Under `bench run --device` a span's latency
    is on-device time (`SpanMeasurement.seconds`) and the round trip is a row of its own.
    """
    samples = sampler.samples() if sampler is not None else None
    sampled = attribute_peaks(samples, [(s.start_ns, s.end_ns) for s in spans]) if samples is not None else None
    stamp = utc_timestamp()
    out: list[Measurement] = []
    for index, span in enumerate(spans):
        where = {"phase": span.phase, "repeat": span.repeat, "step": span.step, "timestamp": stamp}
        out.append(Measurement(span.stage, "latency", span.seconds, "s", **where))
        peak = sampled[index] if sampled is not None else None
        rss = combine_peaks(span.peak_rss, peak.rss if peak else None)
        footprint = combine_peaks(span.peak_footprint, peak.footprint if peak else None)
        if rss is not None:
            out.append(Measurement(span.stage, "peak_rss", rss, "bytes", **where))
        if footprint is not None:
            out.append(Measurement(span.stage, "peak_footprint", footprint, "bytes", **where))
        if peak is not None:
            out.append(Measurement(span.stage, "memory_samples", peak.samples, "count", **where))
        if span.host_round_trip is not None:
            out.append(Measurement(span.stage, "host_round_trip", span.host_round_trip, "s", **where))
        out.extend(Measurement(span.stage, metric, value, unit, **where) for metric, value, unit in span.values)
    return out


class WorkerProcess:
    """One case's worker: start it, pump its events until it ends or times out, classify the exit.

    An interrupt (Ctrl-C, or SIGTERM / SIGHUP turned into `Interrupted`) while pumping kills the
    worker's process group; the result says `interrupted` and `interrupted_by` keeps the signal
    for the caller to re-raise once the case's rows are written.
    """

    def __init__(self, job: WorkerJob, *, timeout: float, log_path: Path | None = None,
                 python: str = sys.executable, env: dict[str, str] | None = None,
                 sample_memory: bool = True, board_dir: Path | None = None) -> None:  # fmt: skip
        self.job = job
        self.sample_memory = sample_memory
        self.timeout = timeout
        self.log_path = log_path
        self.python = python
        self.env = env
        self.spans: list[SpanMeasurement] = []
        self.measurements: list[Measurement] = []
        self.labels: ModelLabels | None = None
        self.failure: Failed | None = None
        self.finished = False
        self.stage: str | None = None
        self.step: int | None = None
        self.sampler: ProcessSampler | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.interrupted_by: Interrupted | None = None
        self._lifeline: int | None = None  # write end of the worker's lifeline (lifeline.hold)
        self._events: queue.Queue[object] = queue.Queue()
        self._eof = False  # the worker closed its event pipe
        # The stage board lives in the run folder when there is one, so even a SIGKILLed runner
        # leaves nothing in the system's temporary folder.
        handle, board = tempfile.mkstemp(prefix=".stage-", suffix=".board", dir=board_dir)
        os.close(handle)
        self._board = Path(board)

    def run(self, on_event: Callable[[Event], None] | None = None) -> WorkerResult:
        """Run the worker to its end; never raises for the case's own failures."""
        started = time.perf_counter()
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        try:
            error = self._start(log)
            if error is not None:
                return WorkerResult("error", error, [], None, 0.0, None)
            status, message, returncode = self._pump(started, on_event)
        finally:
            if self._lifeline is not None:
                os.close(self._lifeline)  # lets the worker's watchdog go
            if self.log_path:
                log.close()  # type: ignore[union-attr]
            last_stage, last_step = StageBoard.read(self._board)
            self._board.unlink(missing_ok=True)
        if last_stage is not None:  # exact, unlike the throttled progress events
            self.stage, self.step = last_stage, last_step
        status, message = self._classify(status, message, returncode)
        measurements = span_measurements(self.spans, self.sampler) + self.measurements + self._sampler_measurements()
        return WorkerResult(status, message, measurements, self.labels, time.perf_counter() - started, returncode,
                            self.interrupted_by)  # fmt: skip

    def _start(self, log: object) -> str | None:
        read_fd, write_fd = os.pipe()
        life_read, self._lifeline = os.pipe()
        job = WorkerJob(self.job.case, self.job.plugin, self.job.models, str(self._board), self.job.image_path)
        command = [self.python, "-m", "bench.worker", "--events-fd", str(write_fd),
                   "--lifeline-fd", str(life_read), "--runner-pid", str(os.getpid())]  # fmt: skip
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(write_fd, life_read), start_new_session=True, env=self.env,
            )  # fmt: skip
        except OSError as error:
            for fd in (read_fd, write_fd, life_read):
                os.close(fd)
            return f"cannot start worker: {error}"
        os.close(write_fd)
        os.close(life_read)
        if self.sample_memory:
            try:
                self.sampler = ProcessSampler(self.process.pid).start()
            except psutil.NoSuchProcess:
                self.sampler = None  # the worker died at once; its exit code tells why
        threading.Thread(target=_read_events, args=(read_fd, self._events), daemon=True).start()
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(job.to_json().encode())
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the worker died at once; its exit code tells why
        return None

    def _pump(self, started: float, on_event: Callable[[Event], None] | None) -> tuple[str, str | None, int | None]:
        process = self.process
        assert process is not None
        deadline = started + self.timeout
        status, message = "ok", None
        try:
            for event in self._drain(deadline):
                self._take(event)
                if on_event is not None:
                    on_event(event)
            if time.perf_counter() >= deadline and not self._eof:
                _kill_group(process)
                status = "timeout"
            try:
                wait = max(0.1, deadline - time.perf_counter()) if status == "ok" else _KILL_GRACE
                returncode = process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                returncode = process.wait(timeout=_KILL_GRACE)
                if status == "ok":
                    status, message = "timeout", f"timed out after {self.timeout:g} s (worker did not exit)"
        except KeyboardInterrupt as stop:
            _kill_group(process)
            returncode = process.wait(timeout=_KILL_GRACE)
            self.interrupted_by = stop if isinstance(stop, Interrupted) else Interrupted(signal.SIGINT)
            status = "interrupted"
        except BaseException:
            _kill_group(process)
            process.wait(timeout=_KILL_GRACE)
            raise
        finally:
            if self.sampler is not None:
                self.sampler.stop()
        return status, message, returncode

    def _drain(self, deadline: float) -> Iterator[Event]:
        """Events until the pipe closes or the deadline passes."""
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            try:
                item = self._events.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if item is _EOF:
                self._eof = True
                return
            yield item  # type: ignore[misc]

    def _take(self, event: Event) -> None:
        if isinstance(event, SpansFinished):
            self.spans.extend(event.spans)
        elif isinstance(event, Measured):
            self.measurements.extend(event.measurements)
        elif isinstance(event, StageStarted):
            self.stage, self.step = event.stage, event.step
        elif isinstance(event, ModelsResolved):
            self.labels = event.labels
        elif isinstance(event, Failed):
            self.failure = event
        elif isinstance(event, Finished):
            self.finished = True
        elif isinstance(event, WorkerStarted) and self.process is not None and event.pid != self.process.pid:
            self.failure = Failed("ProtocolError", f"worker reports PID {event.pid}, started as {self.process.pid}")

    def _classify(self, status: str, message: str | None, returncode: int | None) -> tuple[str, str | None]:
        if status == "interrupted" and self.interrupted_by is not None:
            return status, f"interrupted by {self.interrupted_by.name}{_where(self.stage, self.step)}"
        if status == "timeout" and message is None:
            message = f"timed out after {self.timeout:g} s{_where(self.stage, self.step)}"
        if status != "ok":
            return status, message
        if self.failure is not None:
            where = _where(self.failure.stage, self.failure.step)
            return "error", f"{self.failure.error_type}: {self.failure.message}{where}"
        if returncode is not None and returncode < 0:
            return "error", _describe_signal(returncode) + _where(self.stage, self.step)
        if returncode != 0 or not self.finished:
            tail = _last_log_line(self.log_path)
            return "error", f"worker exited with code {returncode}{_where(self.stage, self.step)}" + (f": {tail}" if tail else "")
        return "ok", None

    def _sampler_measurements(self) -> list[Measurement]:
        """What sampling cost: the sampler thread's share of one core, and its sample count."""
        if self.sampler is None:
            return []
        stamp = utc_timestamp()
        return [
            Measurement(PROCESS_STAGE, "sampler_cpu_share", self.sampler.cpu_share, "fraction", timestamp=stamp),
            Measurement(PROCESS_STAGE, "sampler_samples", self.sampler.samples().count, "count", timestamp=stamp),
        ]


def run_worker(
    case: Case,
    *,
    plugin: str = DEFAULT_PLUGIN,
    models: ResolvedModels | None = None,
    log_path: Path | None = None,
    image_path: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    sample_memory: bool = True,
    board_dir: Path | None = None,
) -> WorkerResult:
    """Run `case` in a fresh worker process; enforce its timeout; never raise for its failures.

    `sample_memory=False` leaves span peaks to the worker's edge readings and high-water marks.
    """
    job = WorkerJob(case, plugin, models, None, str(image_path) if image_path else None)
    worker = WorkerProcess(job, timeout=case.timeout, log_path=log_path, python=python, env=env,
                           sample_memory=sample_memory, board_dir=board_dir)  # fmt: skip
    return worker.run(on_event)


def _read_events(fd: int, events: queue.Queue[object]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            try:
                events.put(decode(line))
            except ProtocolError:
                continue  # a torn line from a killed worker
    events.put(_EOF)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (it leads its own session)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            process.kill()
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- runner


@dataclass
class Runner:
    """Runs cases one after another into `run_dir/results.csv`."""

    run_dir: Path
    run_id: str
    environment: EnvironmentColumns
    plugin: str = DEFAULT_PLUGIN
    progress: ProgressListener = field(default_factory=NullProgress)
    save_images: bool = True
    env: dict[str, str] | None = None
    #: model id -> what the plugin's prepare_models returned; workers get the resolved model sets.
    models: dict[str, PreparedModel] = field(default_factory=dict)
    sample_memory: bool = True  # sample each worker's memory from outside (see bench.measure.memory)
    #: case id -> power state at the case's start and end (for manifest.json; validity uses it).
    power: dict[str, dict[str, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.writer = ResultsWriter(self.run_dir / RESULTS_FILE)

    def run(self, cases: Sequence[Case]) -> list[CaseOutcome]:
        """Run every case not already complete in the results file; return their outcomes."""
        done = completed_case_ids(self.run_dir / RESULTS_FILE)
        outcomes: list[CaseOutcome] = []
        self.progress.run_started(cases, sum(case.case_id in done for case in cases))
        try:
            for index, case in enumerate(cases):
                if case.case_id in done:
                    outcome = CaseOutcome(case, "resumed")
                else:
                    self.progress.case_started(index, case)
                    outcome = self.skip(case) if case.skip_reason else self.execute(case)
                outcomes.append(outcome)
                self.progress.case_finished(index, outcome)
        finally:
            self.progress.run_finished()
        return outcomes

    def skip(self, case: Case) -> CaseOutcome:
        context = CaseContext(self.run_id, case, self.environment)
        self.writer.append([self._closing_row(context, Outcome("skipped", case.skip_reason), None)])
        return CaseOutcome(case, "skipped", case.skip_reason, None, 1)

    def execute(self, case: Case) -> CaseOutcome:
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{case.case_id}.log"
        image_path = self.run_dir / "images" / f"{case.case_id}.png" if self.save_images and case.save_image else None
        power_before = power_state()
        result = run_worker(
            case,
            plugin=self.plugin,
            models=resolved_for(case, self.models),
            log_path=log_path,
            image_path=image_path,
            on_event=lambda event: self.progress.case_event(case, event),
            env=self.env,
            sample_memory=self.sample_memory,
            board_dir=self.run_dir,
        )
        if log_path.exists() and log_path.stat().st_size == 0:
            log_path.unlink()
        self.power[case.case_id] = {"start": power_before, "end": power_state()}
        validity = judge(case, result.status, result.measurements, self.power[case.case_id])
        context = CaseContext(self.run_id, case, self.environment, result.labels)
        outcome = validity.outcome(result.status, result.error)
        rows = [build_row(context, measurement, outcome) for measurement in result.measurements]
        rows.append(self._closing_row(context, outcome, result.wall_seconds))
        self.writer.append(rows)
        if result.interrupted_by is not None:  # the case is recorded as interrupted; now stop the run
            raise result.interrupted_by
        return CaseOutcome(case, result.status, result.error, result.wall_seconds, len(rows), validity)

    @staticmethod
    def _closing_row(context: CaseContext, outcome: Outcome, wall: float | None) -> dict[str, object]:
        closing = Measurement(OUTCOME_STAGE, "wall_time", wall, "s", timestamp=utc_timestamp())
        return build_row(context, closing, outcome, closing=True)
