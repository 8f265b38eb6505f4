"""Exports of results for other tools: pytest-benchmark JSON, CSV and Parquet.

- `pytest_benchmark_json`: one run in pytest-benchmark's storage format (`machine_info`,
  `commit_info`, `benchmarks`, `datetime`, `version`), one benchmark per case and stage with the
  `stats` block of `pytest_benchmark.stats.Stats.fields` plus `data` and `iterations`, so
  `pytest-benchmark compare` tabulates and compares bench runs like its own.
- `table`: the rows (`raw`, in the results schema), per-stage statistics (`stages`,
  `bench.report.summary.stage_summary`) or per-case figures (`cases`, `case_summary`); written as
  CSV (`raw` in the exact results.csv format, so `load_results` reads it back) or as Parquet through
  pyarrow, which keeps every dtype (categoricals, nullable integers and booleans, UTC timestamps).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.errors import ResultsError
from bench.measure.stats import benchmark_stats, describe
from bench.report.summary import CASE_KEY, IDENTITY_COLUMNS, case_summary, stage_summary
from bench.schema import OUTCOME_STAGE

if TYPE_CHECKING:
    import pandas as pd

Table = Literal["raw", "stages", "cases"]
#: The pytest-benchmark storage version this writer follows (its JSON `version` field).
PYTEST_BENCHMARK_FORMAT = "5.1.0"


def read_manifest(path: Any) -> dict[str, Any]:
    """The manifest.json beside the first results.csv of `path`, or {} if there is none."""
    from bench.store import MANIFEST_FILE, find_results_files

    files = find_results_files(path)
    manifest = Path(files[0]).parent / MANIFEST_FILE if files else None
    if manifest is None or not manifest.exists():
        return {}
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ResultsError(f"cannot read {manifest}: {error}") from None


# --------------------------------------------------------------------------- pytest-benchmark


def pytest_benchmark_json(results: pd.DataFrame, manifest: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """One run as a pytest-benchmark JSON document, and how many cases were left out (not ok)."""
    runs = results["run_id"].dropna().unique()
    if len(runs) != 1:
        raise ResultsError(f"pytest-benchmark export takes one run; these results hold {len(runs)} ({', '.join(map(str, runs[:5]))})")
    closing = results[results["stage"].astype("string") == OUTCOME_STAGE]
    ok = set(closing.loc[closing["status"].astype("string") == "ok", "case_id"].astype(str))
    case_ids = list(dict.fromkeys(results["case_id"].astype(str)))
    left_out = sum(1 for case_id in case_ids if case_id not in ok)
    phase = results["phase"].astype("string")
    metric = results["metric"].astype("string")
    rows = results[(metric == "latency") & phase.isin(["measured", "cold"]).fillna(False)]
    rows = rows[rows["case_id"].astype(str).isin(ok)]
    memory = results[(metric == "peak_rss") & (phase == "measured").fillna(False)]
    peaks = {(str(c), str(s)): describe(g["value"]).median
             for (c, s), g in memory.groupby(["case_id", "stage"], observed=True, sort=False)}  # fmt: skip
    identity = results.drop_duplicates("case_id").set_index("case_id")
    benchmarks = []
    for (case_id, run_phase, stage), group in rows.groupby(["case_id", phase[rows.index], "stage"], observed=True, sort=False):
        case_id, stage = str(case_id), str(stage)
        values = group["value"].to_numpy(dtype="float64", na_value=math.nan)
        if not any(math.isfinite(v) for v in values):
            continue
        label = f"{stage} (cold)" if run_phase == "cold" else stage
        case = identity.loc[case_id]
        params = {c: _plain(case[c]) for c in IDENTITY_COLUMNS if c in case.index and c not in CASE_KEY}
        stats: dict[str, Any] = benchmark_stats(values)
        stats["data"] = [float(v) for v in values if math.isfinite(v)]
        stats["iterations"] = 1
        peak = peaks.get((case_id, stage))
        benchmarks.append({
            "group": str(case["case"]),
            "name": f"{label}[{case_id}]",
            "fullname": f"{case_id}::{label}",
            "params": params,
            "param": case_id,
            "extra_info": {"phase": str(run_phase), "stage": stage, "unit": "s",
                           "peak_rss_bytes": None if peak is None or not math.isfinite(peak) else peak},
            "options": {"disable_gc": False, "timer": "perf_counter_ns", "min_rounds": len(stats["data"]),
                        "max_time": None, "min_time": None, "warmup": str(run_phase) == "measured"},
            "stats": stats,
        })  # fmt: skip
    return {
        "machine_info": _machine_info(results, manifest),
        "commit_info": _commit_info(manifest),
        "benchmarks": benchmarks,
        "datetime": manifest.get("started") or _first_timestamp(results),
        "version": PYTEST_BENCHMARK_FORMAT,
    }, left_out


def _machine_info(results: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info keys, filled from the manifest (or the rows when it is missing)."""
    first = results.iloc[0]
    machine = manifest.get("environment", {}).get("machine", {})
    versions = manifest.get("environment", {}).get("versions", {})
    python = manifest.get("environment", {}).get("python", {})
    device_name = _plain(first["device_name"]) if "device_name" in results else None
    return {
        "node": machine.get("host", _plain(first["host"])),
        "processor": machine.get("chip", _plain(first["chip"])),
        "machine": machine.get("arch", _plain(first["device"])),
        "python_compiler": "",
        "python_implementation": "CPython",
        "python_implementation_version": versions.get("python"),
        "python_version": versions.get("python"),
        "python_build": [python.get("version", "")],
        "release": machine.get("os_build", ""),
        "system": machine.get("os", _plain(first["os"])),
        "cpu": {"brand_raw": machine.get("chip", _plain(first["chip"])), "count": machine.get("cpu_count_logical"),
                "arch_string_raw": machine.get("arch")},  # fmt: skip
        "bench": {"device": _plain(first["device"]), "device_name": device_name, "chip": _plain(first["chip"]),
                  "engine": _plain(first["engine"]), "run_id": _plain(first["run_id"]),
                  "suite": _plain(first["suite"]), "versions": versions},  # fmt: skip
    }


def _commit_info(manifest: dict[str, Any]) -> dict[str, Any]:
    git = manifest.get("environment", {}).get("git", {})
    if not git.get("available"):
        return {"id": "unknown", "time": None, "author_time": None, "dirty": False, "project": "sdxl-coreml-bench",
                "branch": "(unknown)", "error": git.get("reason", "no git state in the manifest")}  # fmt: skip
    return {"id": git.get("commit"), "time": None, "author_time": None, "dirty": bool(git.get("dirty")),
            "project": "sdxl-coreml-bench", "branch": "(unknown)"}  # fmt: skip


def _first_timestamp(results: pd.DataFrame) -> str | None:
    stamps = results["timestamp"].dropna()
    return None if stamps.empty else stamps.min().isoformat()


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: pandas NA -> None, numpy scalars -> Python."""
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value))):
        return None
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------- tables


def table(results: pd.DataFrame, kind: Table) -> pd.DataFrame:
    """The frame an export writes: the rows themselves, per-stage statistics or per-case figures."""
    if kind == "raw":
        return results
    if kind == "cases":
        return case_summary(results)
    identity = [c for c in IDENTITY_COLUMNS if c in results.columns]
    stages = stage_summary(results)
    ids = results[identity].drop_duplicates(list(CASE_KEY))
    return ids.merge(stages, on=list(CASE_KEY), how="right")


def results_csv_text(frame: pd.DataFrame) -> str:
    """Rows of the results schema as results.csv text (true/false, empty for missing, UTC times with Z),
    so that `bench.load_results` reads the export back to the same frame."""
    import pandas as pd

    text = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.BooleanDtype):
            cells = series.map({True: "true", False: "false"})
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            cells = series.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
        elif pd.api.types.is_float_dtype(series.dtype):
            cells = series.map(lambda v: repr(float(v)), na_action="ignore")
        else:
            cells = series.astype("string")
        text[column] = cells.astype("string").fillna("")
    buffer = io.StringIO()
    text.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Parquet through pyarrow; pandas' schema metadata restores the dtypes on read."""
    try:
        frame.reset_index(drop=True).to_parquet(path, engine="pyarrow", index=False)
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror or error}") from None
