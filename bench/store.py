"""The results store: run folders, crash-safe appends and `load_results`.

A run writes `DIR/<run-id>/results.csv`, one row per measurement (tidy / long form; the columns are
`bench.schema.COLUMNS`, rows come from `bench.schema.build_row`).
The runner appends all rows of a case in one write, flushed and fsynced, as the case finishes, so a
killed run loses at most the case in flight. Every case ends with one `outcome` row (its status and
wall time): a case without it was cut short and is dropped when the run resumes.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import ResultsError, ResultsWarning
from bench.schema import (
    COLUMN_NAMES,
    COLUMNS,
    OUTCOME_STAGE,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    V1_METRIC_RENAMES,
    V1_MISSING,
    V1_STAGE_RENAMES,
)

if TYPE_CHECKING:
    import pandas as pd

RESULTS_FILE = "results.csv"
MANIFEST_FILE = "manifest.json"


def new_run_id(now: float | None = None) -> str:
    """A run id: UTC start time (sortable) plus a short random suffix against collisions."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def utc_timestamp(now: float | None = None) -> str:
    """ISO 8601 UTC time with milliseconds, as the `timestamp` column holds it."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


# --------------------------------------------------------------------------- run folders


def prepare_output_dir(output: str | os.PathLike[str]) -> Path:
    """Check that `output` is (or can become) a writable folder; raise ResultsError naming it."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"results folder {out} is a file, not a folder")
    existing = _nearest_existing_parent(out)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultsError(f"results folder {out} is not writable (no write permission on {existing})")
    return out


def create_run_dir(output: str | os.PathLike[str], run_id: str) -> Path:
    """Create `output/run_id` (and `output` if needed); ResultsError if that cannot be done.

    Folders this call creates are removed again if a later step of it fails, so a refused
    results folder leaves nothing behind.
    """
    out = prepare_output_dir(output)
    created: list[Path] = []
    try:
        for folder in reversed([out, *out.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        run_dir = out / run_id
        run_dir.mkdir()
        created.append(run_dir)
        probe = run_dir / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise ResultsError(f"cannot create results folder {out / run_id}: {error.strerror or error}") from None
    return run_dir


def _nearest_existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- writing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def format_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text of `rows` in column order; unknown keys are an error (the schema is closed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    known = set(COLUMN_NAMES)
    for row in rows:
        extra = set(row) - known
        if extra:
            raise ValueError(f"unknown result columns: {', '.join(sorted(extra))}")
        writer.writerow([_cell(row.get(column)) for column in COLUMN_NAMES])
    return buffer.getvalue()


@dataclass
class ResultsWriter:
    """Appends rows to one results.csv: header once, then whole cases, flushed and fsynced."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.path.exists() and self.path.stat().st_size > 0:
            header = _read_header(self.path)
            if tuple(header) != COLUMN_NAMES:
                raise ResultsError(
                    f"{self.path}: header does not match results schema {SCHEMA_VERSION} "
                    "(written by another bench version; start a new run instead of appending)"
                )
            _truncate_partial_last_line(self.path)
        else:
            self._write(",".join(COLUMN_NAMES) + "\n")

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append `rows` (built by `bench.schema.build_row`; typically a whole case) in a single write."""
        text = format_rows(rows)
        if text:
            self._write(text)

    def _write(self, text: str) -> None:
        try:
            with open(self.path, "a", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise ResultsError(f"cannot write {self.path}: {error.strerror or error}") from None


def _read_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


def _truncate_partial_last_line(path: Path) -> None:
    """Cut a last line without its newline (a write killed half-way) so appends stay aligned."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        block = min(size, 1 << 20)
        handle.seek(size - block)
        tail = handle.read(block)
        cut = tail.rfind(b"\n")
        handle.truncate(size - block + cut + 1 if cut >= 0 else 0)


def check_appendable(path: Path) -> None:
    """ResultsError unless `path` is absent, empty, or a results file of this schema (resume checks
    this before it changes anything)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        header = _read_header(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ResultsError(f"{path}: cannot read it ({error})") from None
    if tuple(header) != COLUMN_NAMES:
        version = "an older or newer" if "schema_version" in header else "no"
        raise ResultsError(
            f"{path}: written with {version} results schema, not version {SCHEMA_VERSION}; "
            "it can be read (bench.load_results) but not resumed"
        )
    # Every line but a torn last one (which the writer cuts) must be a row of this schema.
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for number, cells in enumerate(csv.reader(io.StringIO(complete)), 1):
        if number == 1:
            continue
        if len(cells) != len(COLUMN_NAMES):
            raise ResultsError(f"{path} line {number}: {len(cells)} fields, not {len(COLUMN_NAMES)}; cannot resume")
        if cells[0] != str(SCHEMA_VERSION):
            raise ResultsError(f"{path} line {number}: schema_version {cells[0]!r}, not {SCHEMA_VERSION}; cannot resume")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results.csv as string dicts (no typing): for resume bookkeeping."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _finished(row: Mapping[str, str]) -> bool:
    """A closing row of a case that finished (any status but `interrupted`: those run again)."""
    return row.get("stage") == OUTCOME_STAGE and row.get("status") != "interrupted"


def completed_case_ids(path: Path) -> set[str]:
    """Case ids that finished in `path`, whatever their status (interrupted cases did not)."""
    if not Path(path).exists():
        return set()
    return {row["case_id"] for row in read_rows(path) if _finished(row)}


def drop_incomplete_cases(path: Path) -> int:
    """Rewrite `path` without rows of cases that did not finish (no closing row, or interrupted);
    return how many rows went."""
    path = Path(path)
    if not path.exists():
        return 0
    _truncate_partial_last_line(path)
    rows = read_rows(path)
    done = {row["case_id"] for row in rows if _finished(row)}
    keep = [row for row in rows if row["case_id"] in done]
    dropped = len(rows) - len(keep)
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMN_NAMES), lineterminator="\n")
            writer.writeheader()
            writer.writerows(keep)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    return dropped


# --------------------------------------------------------------------------- reading


def find_results_files(path: Any) -> list[Path]:
    """Results files named by a file, a run folder, a results/ tree, a glob, or a list of those."""
    if isinstance(path, (list, tuple)):
        found: list[Path] = []
        for item in path:
            found.extend(find_results_files(item))
        return list(dict.fromkeys(found))
    text = os.fspath(path)
    candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True))] if glob.has_magic(text) else [Path(text)]
    files: list[Path] = []
    for candidate in candidates:
        if candidate.is_file():
            files.append(candidate)
        elif candidate.is_dir():
            files.extend(sorted(candidate.rglob(RESULTS_FILE)))
    return files


def load_results(path: Any, *, incomplete: str = "drop") -> pd.DataFrame:
    """Load one or many results.csv files as one typed DataFrame.

    `path` may be a results.csv, a run folder, a tree of run folders (`results/`), a glob
    (`results/2024*`), or a list of those. Columns get their documented dtypes: categoricals for
    labels, nullable integers for `step`, `repeat` and friends, nullable booleans, UTC timestamps.

    Never a torn row: a last line without its newline, a line with the wrong number of fields, or a
    value that does not parse (or is not finite) is left out, and a `ResultsWarning` names the
    file, the line numbers and the count. Rows of a case with no closing row (a run killed while
    writing it) are left out with a counted warning too, or kept with `incomplete="keep"`.
    """
    import pandas as pd

    if incomplete not in ("drop", "keep"):
        raise ValueError(f"incomplete must be 'drop' or 'keep', not {incomplete!r}")
    files = find_results_files(path)
    if not files:
        raise ResultsError(f"no {RESULTS_FILE} found at {os.fspath(path) if not isinstance(path, (list, tuple)) else path}")
    frames = [_without_incomplete_cases(_read_one(file), file, incomplete) for file in files]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return _apply_dtypes(frame)


def _line_numbers(rows: int, skipped: Sequence[int]) -> Any:
    """The file line of each row read: after the header, shifted past every skipped line."""
    import numpy as np

    lines = np.arange(rows) + 2
    for line in skipped:  # ascending
        lines[lines >= line] += 1
    return lines


def _warn_dropped(file: Path, lines: Sequence[int], what: str) -> None:
    import warnings

    shown = ", ".join(str(line) for line in lines[:5]) + (", ..." if len(lines) > 5 else "")
    warnings.warn(f"{file}: left out {len(lines)} {what} (line {shown})", ResultsWarning, stacklevel=4)


def _without_incomplete_cases(frame: pd.DataFrame, file: Path, incomplete: str) -> pd.DataFrame:
    closed = set(frame.loc[frame["stage"] == OUTCOME_STAGE, "case_id"])
    open_rows = ~frame["case_id"].isin(closed)
    if incomplete == "keep" or not open_rows.any():
        return frame
    _warn_dropped(file, [int(i) for i in frame.index[open_rows]], "rows of cases with no closing row")
    return frame[~open_rows]


#: Columns every row the harness writes fills in (a row without one is torn).
REQUIRED_COLUMNS: tuple[str, ...] = ("schema_version", "run_id", "case_id", "stage", "metric", "status", "timestamp")


def _drop_bad_rows(frame: pd.DataFrame, file: Path, torn_last: bool) -> pd.DataFrame:
    """Rows whose fields are missing or whose values do not parse, left out with a warning."""
    import numpy as np
    import pandas as pd

    bad = frame.isna().any(axis=1)
    for name in REQUIRED_COLUMNS:  # a short line lacks its last fields: every written row has these
        bad |= frame[name] == ""
    if torn_last and len(frame):
        bad.iloc[-1] = True
    for spec in COLUMNS:
        if spec.name not in frame:
            continue
        raw = frame[spec.name]
        present = raw.notna() & (raw != "")
        if spec.dtype in ("Int64", "float64"):
            number = pd.to_numeric(raw.where(present), errors="coerce")
            broken = present & ~np.isfinite(number.astype("float64"))
            if spec.dtype == "Int64":
                broken |= present & number.notna() & (number != number.round())
            bad |= broken
        elif spec.dtype == "boolean":
            bad |= present & ~raw.isin(["true", "false"])
        elif spec.dtype == "timestamp":
            bad |= present & pd.to_datetime(raw.where(present), utc=True, format="ISO8601", errors="coerce").isna()
    if bad.any():
        _warn_dropped(file, [int(i) for i in frame.index[bad]], "torn or unparsable rows")
        frame = frame[~bad]
    return frame


def _read_one(file: Path) -> pd.DataFrame:
    """One file's rows, brought to the current columns (older schema versions too).

    A clean file of the current schema is parsed straight into its dtypes by pyarrow (labels as
    categoricals, each distinct timestamp parsed once): at a million rows several times faster, and
    far smaller, than reading every cell as a string first. Any other file takes the string path,
    which converts older versions and leaves out torn or unparsable rows with a counted warning:
    older files, a torn last line, a line with the wrong number of fields, a cell not of its column's
    type, a non-finite number, a row without a required field.
    """
    try:
        header = _read_header(file)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ResultsError(f"cannot read {file}: {error}") from None
    if tuple(header) == COLUMN_NAMES:
        frame = _read_typed(file)
        if frame is not None:
            return frame
    return _read_strings(file)


def _read_typed(file: Path) -> pd.DataFrame | None:
    """A clean current-schema file parsed by pyarrow's multi-threaded CSV reader into the schema's
    types (index = file line numbers, as the string path numbers rows), or None when anything in it
    needs the string path's checks."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        with open(file, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 1))
            if size == 0 or handle.read(1) != b"\n":
                return None  # empty, or a torn last line
    except OSError as error:
        raise ResultsError(f"cannot read {file}: {error}") from None
    arrow_types = {"Int64": pa.int64(), "float64": pa.float64(), "boolean": pa.bool_(), "string": pa.string(),
                   "category": pa.dictionary(pa.int32(), pa.string()), "timestamp": pa.dictionary(pa.int32(), pa.string())}  # fmt: skip
    options = pa_csv.ConvertOptions(
        column_types={c.name: arrow_types[c.dtype] for c in COLUMNS},
        null_values=[""], strings_can_be_null=True, true_values=["true"], false_values=["false"],
    )  # fmt: skip
    try:
        table = pa_csv.read_csv(file, convert_options=options)
    except pa.ArrowInvalid:
        return None  # wrong field count, or a cell not of its column's type
    except OSError as error:
        raise ResultsError(f"cannot read {file}: {error}") from None
    pandas_types = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype()}
    frame = table.to_pandas(types_mapper=pandas_types.get)
    if frame[list(REQUIRED_COLUMNS)].isna().any(axis=None):
        return None
    if frame["schema_version"].ne(SCHEMA_VERSION).any():
        return None
    for spec in COLUMNS:
        if spec.dtype == "float64" and np.isinf(frame[spec.name].to_numpy(dtype=np.float64, na_value=0.0)).any():
            return None
        if spec.dtype == "float64" and frame[spec.name].isna().sum() != table.column(spec.name).null_count:
            return None  # a literal NaN: not finite
    try:
        frame["timestamp"] = _timestamps(frame["timestamp"])
    except (ValueError, TypeError):
        return None
    frame.index = np.arange(len(frame)) + 2  # the file line of each row, after the header
    return frame[list(COLUMN_NAMES)]


def _read_strings(file: Path) -> pd.DataFrame:
    """One file's rows as strings, brought to the current columns (older schema versions too)."""
    import warnings

    import pandas as pd

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[], on_bad_lines="warn")
        with open(file, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 1))
            torn_last = size > 0 and handle.read(1) != b"\n"
    except pd.errors.EmptyDataError:
        raise ResultsError(f"cannot read {file}: the file is empty (not a results file)") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ResultsError(f"cannot read {file}: {error}") from None
    long_lines = sorted(int(m) for w in caught for m in re.findall(r"Skipping line (\d+)", str(w.message)))
    if long_lines:
        _warn_dropped(file, long_lines, "lines with too many fields")
    frame.index = _line_numbers(len(frame), long_lines)  # so every warning names real lines
    versions = {v for v in frame["schema_version"].unique() if v != ""} if "schema_version" in frame else set()
    for version in versions:
        if not version.isdigit():
            raise ResultsError(f"{file}: schema_version {version!r} is not an integer")
        if int(version) > SCHEMA_VERSION:
            raise ResultsError(
                f"{file}: schema_version {version} is newer than this bench reads ({SCHEMA_VERSION}); upgrade bench"
            )
        if int(version) not in READABLE_VERSIONS:
            raise ResultsError(f"{file}: schema_version {version} is not one this bench reads {READABLE_VERSIONS}")
    if versions == {"1"}:
        for name in V1_MISSING:
            frame[name] = ""
    missing = [name for name in COLUMN_NAMES if name not in frame.columns]
    if missing:
        raise ResultsError(f"{file}: not a results file of schema {SCHEMA_VERSION} (missing columns: {', '.join(missing)})")
    if versions == {"1"}:
        frame["metric"] = frame["metric"].replace(V1_METRIC_RENAMES)
        frame["stage"] = frame["stage"].replace(V1_STAGE_RENAMES)
    return _drop_bad_rows(frame[list(COLUMN_NAMES)], file, torn_last)


def _apply_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Each column as its `bench.schema` dtype says; columns already of that dtype are kept as they are."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for spec in COLUMNS:
        column = frame[spec.name]
        if spec.dtype == "timestamp":
            out[spec.name] = _timestamps(column)
            continue
        if _has_dtype(column, spec.dtype):
            if spec.dtype == "category" and len(column.cat.categories) == 0:
                column = column.cat.set_categories(pd.Index([], dtype="str"))  # as the string path types it
            elif spec.dtype == "category" and not column.cat.categories.is_monotonic_increasing:
                column = column.cat.reorder_categories(column.cat.categories.sort_values())  # as astype sorts them
            elif spec.dtype == "string":
                empty = (column == "").fillna(False)
                if empty.any():  # rows of the string path concatenated with typed rows
                    column = column.mask(empty)
            out[spec.name] = column
            continue
        raw = column.astype(object).replace("", None) if isinstance(column.dtype, pd.CategoricalDtype) else column.replace("", None)
        if spec.dtype == "Int64":
            out[spec.name] = pd.to_numeric(raw, errors="raise").astype("Int64")
        elif spec.dtype == "float64":
            out[spec.name] = pd.to_numeric(raw, errors="raise").astype("float64")
        elif spec.dtype == "boolean":
            out[spec.name] = raw.map({"true": True, "false": False, True: True, False: False, None: None}).astype("boolean")
        elif spec.dtype == "category":
            out[spec.name] = raw.astype("category")
            if len(out[spec.name].cat.categories) == 0:  # no values: str categories, as for a string column
                out[spec.name] = out[spec.name].cat.set_categories(pd.Index([], dtype="str"))
        else:
            out[spec.name] = raw.astype("string")
    return out


def _has_dtype(column: pd.Series, dtype: str) -> bool:
    import pandas as pd

    if dtype == "category":
        return isinstance(column.dtype, pd.CategoricalDtype)
    return str(column.dtype) == dtype or (dtype == "string" and isinstance(column.dtype, pd.StringDtype)
                                          and column.dtype.na_value is pd.NA)  # fmt: skip


def _timestamps(column: pd.Series) -> pd.Series:
    """UTC datetimes from ISO 8601 text; a categorical column is parsed once per distinct value."""
    import pandas as pd

    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column
    if isinstance(column.dtype, pd.CategoricalDtype):
        parsed = pd.to_datetime(pd.Series(column.cat.categories.astype(str)), utc=True, format="ISO8601")
        stamps = pd.DatetimeIndex(parsed).take(column.cat.codes.to_numpy(), allow_fill=True, fill_value=pd.NaT)
        return pd.Series(stamps, index=column.index, name=column.name)
    return pd.to_datetime(column.replace("", None), utc=True, format="ISO8601")
