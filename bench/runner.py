"""The runner: cases -> one worker process each -> rows appended to results.csv.

Each case runs in `python -m bench.worker`, started in its own session (process group), so a
timeout kills the worker and anything it started, and Ctrl-C at the terminal reaches only the
runner, which then stops the worker and leaves the results file consistent. The runner owns the
results file: it buffers a case's rows and appends them in one flushed, fsynced write when the
case ends, closed by a `case` row carrying the status (`ok`, `error`, `timeout`, `skipped`).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.case_exec import DEFAULT_EXECUTOR
from bench.store import CASE_STAGE, RESULTS_FILE, ResultsWriter, completed_case_ids, utc_timestamp
from bench.suite.case import Case
from bench.worker import StageBoard

_EOF = object()
_KILL_GRACE = 5.0  # seconds to wait for a killed worker to be reaped


@dataclass
class WorkerResult:
    """What one worker process produced."""

    status: str  # ok, error, timeout
    error: str | None
    rows: list[dict[str, Any]]
    meta: dict[str, Any] | None
    wall_seconds: float
    returncode: int | None


@dataclass
class CaseOutcome:
    """One case's end state, as the progress display and the summary see it."""

    case: Case
    status: str  # ok, error, timeout, skipped, or "resumed" (already complete; not run again)
    error: str | None = None
    wall_seconds: float | None = None
    rows: int = 0


class ProgressListener(Protocol):
    def run_started(self, cases: Sequence[Case], already_done: int) -> None: ...

    def case_started(self, index: int, case: Case) -> None: ...

    def case_event(self, case: Case, event: dict[str, Any]) -> None: ...

    def case_finished(self, index: int, outcome: CaseOutcome) -> None: ...

    def run_finished(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def run_started(self, cases: Sequence[Case], already_done: int) -> None:
        pass

    def case_started(self, index: int, case: Case) -> None:
        pass

    def case_event(self, case: Case, event: dict[str, Any]) -> None:
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


def _where(stage: Any, step: Any) -> str:
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


def run_worker(
    case: Case,
    *,
    executor: str = DEFAULT_EXECUTOR,
    log_path: Path | None = None,
    image_path: Path | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    model_set: dict[str, Any] | None = None,
    baseline_set: dict[str, Any] | None = None,
) -> WorkerResult:
    """Run `case` in a fresh worker process; enforce its timeout; never raise for its failures.

    KeyboardInterrupt propagates after the worker's process group has been killed.
    """
    read_fd, write_fd = os.pipe()
    board = Path(tempfile.mkstemp(prefix="bench-stage-", suffix=".board")[1])
    payload = json.dumps({"case": case.to_dict(), "executor": executor, "stage_board": str(board),
                          "image_path": str(image_path) if image_path else None,
                          "model_set": model_set, "baseline_set": baseline_set})  # fmt: skip
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    started = time.perf_counter()
    try:
        process = subprocess.Popen(
            [python, "-m", "bench.worker", "--events-fd", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,
            env=env,
        )
    except OSError as error:
        os.close(read_fd)
        os.close(write_fd)
        board.unlink(missing_ok=True)
        if log_path:
            log.close()  # type: ignore[union-attr]
        return WorkerResult("error", f"cannot start worker: {error}", [], None, 0.0, None)
    os.close(write_fd)
    events: queue.Queue[Any] = queue.Queue()
    reader = threading.Thread(target=_read_events, args=(read_fd, events), daemon=True)
    reader.start()

    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] | None = None
    error_event: dict[str, Any] | None = None
    done = False
    stage: Any = None
    step: Any = None
    status = "ok"
    message: str | None = None
    deadline = started + case.timeout
    try:
        try:
            assert process.stdin is not None
            process.stdin.write(payload.encode())
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the worker died at once; its exit code tells why
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                _kill_group(process)
                status = "timeout"
                break
            try:
                event = events.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if event is _EOF:
                break
            kind = event.get("event")
            if kind == "rows":
                rows.extend(event["rows"])
            elif kind == "stage":
                stage, step = event.get("stage"), event.get("step")
            elif kind == "meta":
                meta = event.get("meta")
            elif kind == "error":
                error_event = event
            elif kind == "done":
                done = True
            if on_event is not None:
                on_event(event)
        try:
            returncode = process.wait(timeout=max(0.1, deadline - time.perf_counter()) if status == "ok" else _KILL_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            returncode = process.wait(timeout=_KILL_GRACE)
            if status == "ok":
                status, message = "timeout", f"timed out after {case.timeout:g} s (worker did not exit)"
    except BaseException:
        _kill_group(process)
        process.wait(timeout=_KILL_GRACE)
        raise
    finally:
        reader.join(timeout=1.0)
        if log_path:
            log.close()  # type: ignore[union-attr]
        last_stage, last_step = StageBoard.read(board)
        board.unlink(missing_ok=True)
    if last_stage is not None:  # exact, unlike the throttled progress events
        stage, step = last_stage, last_step

    if status == "timeout" and message is None:
        message = f"timed out after {case.timeout:g} s{_where(stage, step)}"
    if status == "ok":
        if error_event is not None:
            status = "error"
            message = f"{error_event.get('kind')}: {error_event.get('message')}" + _where(
                error_event.get("stage"), error_event.get("step")
            )
        elif returncode is not None and returncode < 0:
            status, message = "error", _describe_signal(returncode) + _where(stage, step)
        elif returncode != 0 or not done:
            status = "error"
            tail = _last_log_line(log_path)
            message = f"worker exited with code {returncode}{_where(stage, step)}" + (f": {tail}" if tail else "")
    return WorkerResult(status, message, rows, meta, time.perf_counter() - started, returncode)


def _read_events(fd: int, events: queue.Queue[Any]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            try:
                events.put(json.loads(line))
            except ValueError:
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


# --------------------------------------------------------------------------- rows


def case_columns(case: Case, run_id: str, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The case part of every row; model labels come from the resolved model set when known."""
    meta = meta or {}
    return {
        "run_id": run_id,
        "case_id": case.case_id,
        "case": case.label,
        "suite": case.suite,
        "model": case.model,
        "engine": case.engine,
        "compute_unit": case.compute_unit,
        "attention": meta.get("attention") or case.attention,
        "quantization": meta.get("quantization") or case.quantization,
        "resolution": meta.get("resolution") or case.resolution,
        "steps": case.steps,
        "scheduler": case.scheduler,
        "guidance": case.guidance,
        "batch": meta.get("batch") or case.batch,
        "reduce_memory": case.reduce_memory,
        "refiner": case.refiner,
        "strength": case.strength,
        "seed": case.seed,
    }


# --------------------------------------------------------------------------- runner


@dataclass
class Runner:
    """Runs cases one after another into `run_dir/results.csv`."""

    run_dir: Path
    run_id: str
    environment_columns: dict[str, str]
    executor: str = DEFAULT_EXECUTOR
    progress: ProgressListener = field(default_factory=NullProgress)
    save_images: bool = True
    env: dict[str, str] | None = None
    #: model id -> what the executor module's prepare_models said (manifest["models"]); its
    #: `model_set` and `quality_baseline` go to the workers so they need not resolve models again.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        row = self._closing_row(case, None, "skipped", case.skip_reason, None)
        self.writer.append([row])
        return CaseOutcome(case, "skipped", case.skip_reason, None, 1)

    def execute(self, case: Case) -> CaseOutcome:
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{case.case_id}.log"
        image_path = self.run_dir / "images" / f"{case.case_id}.png" if self.save_images and case.save_image else None
        info = self.models.get(case.model, {})
        baseline_id = info.get("quality_baseline")
        baseline = self.models.get(baseline_id, {}).get("model_set") if baseline_id else None
        result = run_worker(
            case,
            executor=self.executor,
            log_path=log_path,
            image_path=image_path,
            on_event=lambda event: self.progress.case_event(case, event),
            env=self.env,
            model_set=info.get("model_set"),
            baseline_set=baseline,
        )
        if log_path.exists() and log_path.stat().st_size == 0:
            log_path.unlink()
        columns = case_columns(case, self.run_id, result.meta)
        environment = self.environment_columns
        rows = [
            {**columns, **row, "status": result.status, "error": None, **environment} for row in result.rows
        ]
        rows.append(self._closing_row(case, result.meta, result.status, result.error, result.wall_seconds))
        self.writer.append(rows)
        return CaseOutcome(case, result.status, result.error, result.wall_seconds, len(rows))

    def _closing_row(
        self, case: Case, meta: dict[str, Any] | None, status: str, error: str | None, wall: float | None
    ) -> dict[str, Any]:
        return {
            **case_columns(case, self.run_id, meta),
            "phase": None,
            "repeat": None,
            "stage": CASE_STAGE,
            "step": None,
            "metric": "wall_time",
            "value": wall,
            "unit": "s",
            "status": status,
            "error": error,
            **self.environment_columns,
            "timestamp": utc_timestamp(),
        }
