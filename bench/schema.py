"""The results schema: one table of columns, and the one function that builds a results row.

Every row of results.csv is built by `build_row` from typed parts: the case (`CaseContext`), one
`Measurement`, and the case's `Outcome`. The column table `COLUMNS` (name, dtype, meaning) drives
the writer's header, `load_results`' dtypes and the README's schema table (a test keeps the README
equal to `markdown_table()`; `python -m bench.schema` prints it). Case columns come from the case
field table (`bench.suite.fields.FIELDS`), so a new case field needs no edit here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.suite.case import Case
from bench.suite.fields import FIELDS

#: Bumped on any incompatible change of the columns or their meaning. Version 2 added `valid`,
#: `invalid_reason` and `device_name`, and stopped storing a per-repeat `iter_per_s` (derived
#: figures are computed from the raw rows by `bench.measure.stats`).
SCHEMA_VERSION = 2
#: Versions `load_results` reads (older files are brought to the current columns on reading).
READABLE_VERSIONS: tuple[int, ...] = (1, 2)

#: Column dtypes, as pandas names them; `timestamp` is a UTC datetime.
DTYPES: tuple[str, ...] = ("string", "category", "Int64", "float64", "boolean", "timestamp")

PHASES: tuple[str, ...] = ("cold", "warmup", "measured")
STATUSES: tuple[str, ...] = ("ok", "error", "timeout", "skipped", "interrupted")
#: The stage of the one row that closes every case: its outcome (status, error) and wall time.
OUTCOME_STAGE = "outcome"
#: The stage of whole-process figures (high-water marks, what the sampler cost).
PROCESS_STAGE = "process"


@dataclass(frozen=True)
class Column:
    """One results column: its name, pandas dtype and what it means."""

    name: str
    dtype: str
    meaning: str


def _case_columns() -> list[Column]:
    columns = [Column("suite", "category", "suite name")]
    columns += [Column(name, spec.column, spec.meaning) for name, spec in FIELDS.items() if spec.column]
    columns.append(Column("batch", "Int64", "UNet batch per call: 2 ([negative, positive] in one call), 1 for batch-one models"))
    return columns


#: The columns, in file order.
COLUMNS: tuple[Column, ...] = (
    Column("schema_version", "Int64", "integer, bumped on incompatible change"),
    Column("run_id", "string", "the run: UTC start time + random suffix"),
    Column("case_id", "string", "stable hash of the case parameters"),
    Column("case", "string", "readable case label"),
    *_case_columns(),
    Column("phase", "category", "`cold`, `warmup`, `measured` (empty for whole-case rows)"),
    Column("repeat", "Int64", "repeat index within the phase (empty for cold and whole-case rows)"),
    Column("stage", "category", "pipeline stage, `process` (whole worker) or `outcome` (the closing row)"),
    Column("step", "Int64", "denoising step index of per-step stages"),
    Column("metric", "category", "what was measured: `latency`, `peak_rss`, ..."),
    Column("value", "float64", "the measurement"),
    Column("unit", "category", "`s`, `bytes`, `count`, `fraction`, `dB`"),
    Column("status", "category", "the case's status: " + ", ".join(f"`{s}`" for s in STATUSES)),
    Column("error", "string", "the failure message, on the case's closing row"),
    Column("valid", "boolean", "false when the case breaks a validity rule (README: Validity)"),
    Column("invalid_reason", "string", "why the case is invalid"),
    Column("device", "category", "device model identifier (hw.model such as `Mac14,6`, or `iPhone16,2`)"),
    Column("device_name", "category", "marketing name where known (`iPhone 15 Pro Max`)"),
    Column("chip", "category", "processor (`Apple M2 Max`)"),
    Column("os", "category", "OS name, version and build"),
    Column("host", "category", "host name of the machine that ran the worker"),
    Column("timestamp", "timestamp", "UTC time the measurement was taken (repeat end)"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


#: Version 1 files: the columns they have. Version 2 added these; they read back empty.
V1_MISSING: tuple[str, ...] = ("valid", "invalid_reason", "device_name")
#: Version 1 stored a per-repeat iter/s under this metric; it reads back as `repeat_iter_per_s`,
#: never as the case figure (which is 1 / median step time over all measured repeats).
V1_METRIC_RENAMES: dict[str, str] = {"iter_per_s": "repeat_iter_per_s"}
#: Version 1 called the closing row's stage `case`, the name of the unit of work itself.
V1_STAGE_RENAMES: dict[str, str] = {"case": OUTCOME_STAGE}


@dataclass(frozen=True)
class Measurement:
    """One measured value, as a worker (spans, counts, quality) or the runner (closing row) reports it."""

    stage: str
    metric: str
    value: float | None
    unit: str
    phase: str | None = None
    repeat: int | None = None
    step: int | None = None
    timestamp: str | None = None


@dataclass(frozen=True)
class ModelLabels:
    """What the resolved model set says about a case; its rows show these over the case's own."""

    attention: str | None = None
    quantization: str | None = None
    resolution: int | None = None
    batch: int | None = None


@dataclass(frozen=True)
class EnvironmentColumns:
    """Where the case ran, as every row records it (the rest of the environment is in manifest.json)."""

    device: str
    chip: str
    os: str
    host: str
    device_name: str | None = None

    @classmethod
    def from_environment(cls, environment: Mapping[str, Any]) -> EnvironmentColumns:
        """From manifest.json's `environment` (`bench.measure.environment.capture_environment`).

        Under `bench run --device` the rows name the iPhone / iPad that ran the models (its
        identity, `bench.devices.remote_device_environment`, is under `remote_device`); the host
        is still the Mac that drove it.
        """
        machine = environment["machine"]
        remote = environment.get("remote_device")
        if remote:
            os_text = " ".join(str(x) for x in (remote.get("platform"), remote.get("os_version"), remote.get("os_build")) if x)
            device = remote.get("product_type") or remote.get("published_name") or "unknown device"
            return cls(device, remote.get("chip") or device, os_text, machine["host"], remote.get("published_name"))
        return cls(machine["device"], machine["chip"], machine["os"], machine["host"], machine.get("device_name"))


@dataclass(frozen=True)
class Outcome:
    """How a case ended, carried by each of its rows (the error only by its closing row)."""

    status: str
    error: str | None = None
    valid: bool | None = None
    invalid_reason: str | None = None


@dataclass(frozen=True)
class CaseContext:
    """Everything a case's rows share: run, case, resolved model labels, environment."""

    run_id: str
    case: Case
    environment: EnvironmentColumns
    labels: ModelLabels | None = None


def build_row(context: CaseContext, measurement: Measurement, outcome: Outcome, *, closing: bool = False) -> dict[str, Any]:
    """The results row of `measurement`: the one place a row is assembled.

    `closing` marks the case's closing row, the only row that carries the error message.
    """
    case, labels = context.case, context.labels or ModelLabels()
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": context.run_id,
        "case_id": case.case_id,
        "case": case.label,
        "suite": case.suite,
    }
    for name, spec in FIELDS.items():
        if spec.column:
            own = getattr(labels, name) if spec.from_model else None
            row[name] = own if own is not None else getattr(case, name)
    row["batch"] = labels.batch if labels.batch is not None else case.batch
    row.update(
        phase=measurement.phase,
        repeat=measurement.repeat,
        stage=measurement.stage,
        step=measurement.step,
        metric=measurement.metric,
        value=measurement.value,
        unit=measurement.unit,
        status=outcome.status,
        error=outcome.error if closing else None,
        valid=outcome.valid,
        invalid_reason=outcome.invalid_reason,
        device=context.environment.device,
        device_name=context.environment.device_name,
        chip=context.environment.chip,
        os=context.environment.os,
        host=context.environment.host,
        timestamp=measurement.timestamp,
    )
    return row


def markdown_table() -> str:
    """The schema as a markdown table (the README's "Schema" section holds exactly this)."""
    lines = ["| column | dtype | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.meaning} |" for c in COLUMNS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
