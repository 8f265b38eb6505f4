"""What the runner and a worker tell each other: the job, the events, the stage board.

The runner hands the worker a `WorkerJob` as JSON on stdin. The worker writes one event per line
to an inherited pipe (small dataclasses that serialise themselves); the runner reads them back
with `decode`. The worker also writes its current stage to a `StageBoard` file, which the runner
reads after a crash. Every event the worker sends is read by the runner (and shown by the progress display):

    WorkerStarted    the worker's PID and clock, first (the runner starts sampling its memory)
    StageStarted     progress: a stage (and step) began (throttled; the stage board is exact)
    PhaseStarted     progress: the cold load, a warm-up or a measured repeat began
    ModelsResolved   the resolved model set's labels (the case's rows show them)
    SpansFinished    finished spans with their start / end times and edge memory peaks
    Measured         other figures: UNet calls per repeat, PSNR, process high-water marks
    Failed           the case failed: error type, message, and the stage it failed in
    Finished         the case ran to its end
"""

from __future__ import annotations

import json
import mmap
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from bench.measure.spans import SpanMeasurement
from bench.models.variant import ResolvedModels
from bench.schema import Measurement, ModelLabels
from bench.suite.case import Case


@dataclass(frozen=True)
class WorkerStarted:
    kind: ClassVar[str] = "started"
    pid: int


@dataclass(frozen=True)
class StageStarted:
    kind: ClassVar[str] = "stage"
    stage: str
    step: int | None = None


@dataclass(frozen=True)
class PhaseStarted:
    kind: ClassVar[str] = "phase"
    phase: str
    repeat: int | None = None


@dataclass(frozen=True)
class ModelsResolved:
    kind: ClassVar[str] = "models"
    labels: ModelLabels

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> ModelsResolved:
        return cls(ModelLabels(**data["labels"]))


@dataclass(frozen=True)
class SpansFinished:
    kind: ClassVar[str] = "spans"
    spans: tuple[SpanMeasurement, ...]

    def to_fields(self) -> dict[str, Any]:
        return {"spans": [list(span) for span in self.spans]}  # positional: spans are the bulk of the traffic

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> SpansFinished:
        return cls(tuple(SpanMeasurement(*item) for item in data["spans"]))


@dataclass(frozen=True)
class Measured:
    kind: ClassVar[str] = "measured"
    measurements: tuple[Measurement, ...]

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Measured:
        return cls(tuple(Measurement(**item) for item in data["measurements"]))


@dataclass(frozen=True)
class Failed:
    kind: ClassVar[str] = "failed"
    error_type: str
    message: str
    stage: str | None = None
    step: int | None = None


@dataclass(frozen=True)
class Finished:
    kind: ClassVar[str] = "finished"


Event = WorkerStarted | StageStarted | PhaseStarted | ModelsResolved | SpansFinished | Measured | Failed | Finished
EVENT_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (WorkerStarted, StageStarted, PhaseStarted, ModelsResolved, SpansFinished, Measured, Failed, Finished)
}


class ProtocolError(ValueError):
    """A line that is not an event (a torn line from a killed worker, or stray output)."""


def encode(event: Event) -> bytes:
    """One JSON line: `{"event": kind, ...fields}`."""
    data = event.to_fields() if hasattr(event, "to_fields") else asdict(event)
    return (json.dumps({"event": event.kind, **data}, separators=(",", ":")) + "\n").encode()


def decode(line: bytes | str) -> Event:
    """The event of one JSON line; ProtocolError if it is not one."""
    try:
        data = json.loads(line)
        cls = EVENT_TYPES[data.pop("event")]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProtocolError(f"not a worker event: {str(line)[:80]!r} ({error})") from None
    try:
        if hasattr(cls, "from_fields"):
            return cls.from_fields(data)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
    except (TypeError, KeyError) as error:
        raise ProtocolError(f"malformed {cls.kind} event: {error}") from None


@dataclass(frozen=True)
class WorkerJob:
    """What the runner hands a worker on stdin: the case and where its outputs go."""

    case: Case
    plugin: str  # `module:attribute` of the case plugin (bench.plugin)
    models: ResolvedModels | None = None
    stage_board: str | None = None
    image_path: str | None = None

    def to_json(self) -> str:
        return json.dumps({
            "case": self.case.to_dict(),
            "plugin": self.plugin,
            "models": self.models.to_dict() if self.models else None,
            "stage_board": self.stage_board,
            "image_path": self.image_path,
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> WorkerJob:
        data = json.loads(text)
        models = data.get("models")
        return cls(
            case=Case.from_dict(data["case"]),
            plugin=data["plugin"],
            models=ResolvedModels.from_dict(models) if models else None,
            stage_board=data.get("stage_board"),
            image_path=data.get("image_path"),
        )


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
