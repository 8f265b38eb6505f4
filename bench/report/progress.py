"""Live progress of a run: cases done, the current case, its phase, stage and step.

On a terminal this is a rich Progress display; elsewhere (CI logs) one line per finished case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bench.measure.recorder import STEP_STAGES
from bench.protocol import Event, PhaseStarted, StageStarted
from bench.report.summary import format_seconds
from bench.runner import CaseOutcome
from bench.suite.case import Case


class RichProgress:
    """Implements bench.runner.ProgressListener with rich."""

    def __init__(self, console: Console, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self._cases: TaskID | None = None
        self._current: TaskID | None = None
        self._total = 0
        self._phase = ""
        self._case: Case | None = None
        self._case_started = 0.0

    # ProgressListener
    def run_started(self, cases: Sequence[Case], already_done: int) -> None:
        self._total = len(cases)
        if already_done:
            self.console.print(f"resuming: {already_done} of {len(cases)} cases already complete")
        self.progress.start()
        self._cases = self.progress.add_task("cases", total=len(cases), completed=0)
        self._current = self.progress.add_task("", total=1, completed=0, visible=False)

    def case_started(self, index: int, case: Case) -> None:
        self._case = case
        self._phase = ""
        self._case_started = time.perf_counter()
        if self._current is not None:
            self.progress.update(
                self._current, description=self._describe("starting"), total=case.steps, completed=0, visible=True
            )

    def case_event(self, case: Case, event: Event) -> None:
        if self._current is None:
            return
        if isinstance(event, PhaseStarted):
            total = {"warmup": case.warmup, "measured": case.repeats}.get(event.phase)
            repeat = event.repeat
            self._phase = event.phase + (f" {repeat + 1}/{total}" if repeat is not None and total else "")
            self.progress.update(self._current, description=self._describe("..."), completed=0)
        elif isinstance(event, StageStarted):
            text = event.stage if event.step is None else f"{event.stage} step {event.step + 1}"
            update: dict[str, Any] = {"description": self._describe(text)}
            if event.step is not None and event.stage in STEP_STAGES:
                update["completed"] = min(event.step + 1, case.steps)
            self.progress.update(self._current, **update)

    def case_finished(self, index: int, outcome: CaseOutcome) -> None:
        if self._cases is not None:
            self.progress.update(self._cases, advance=1)
        if outcome.status == "resumed":
            return
        line = f"[{index + 1}/{self._total}] {_colour(outcome.status)} {escape(outcome.case.label)}"
        if outcome.wall_seconds is not None:
            line += f" ({format_seconds(outcome.wall_seconds)})"
        if outcome.error:
            line += f": {escape(outcome.error)}"
        self.progress.console.print(line) if self.live else self.console.print(line)

    def run_finished(self) -> None:
        if self._current is not None:
            self.progress.update(self._current, visible=False)
        self.progress.stop()

    def status(self, text: str) -> None:
        """A one-off line (e.g. preparing models)."""
        self.console.print(text)

    def _describe(self, stage: str) -> str:
        label = escape(self._case.label) if self._case else ""
        phase = f" · {self._phase}" if self._phase else ""
        return f"[bold]{label}[/bold]{phase} · {escape(stage)}"


def _colour(status: str) -> str:
    colour = {"ok": "green", "skipped": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/{colour}]"
