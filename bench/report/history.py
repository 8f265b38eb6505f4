"""History across runs: one series per case, phase, stage and metric, and the changes in it.

    series = build_series(results, run_start_times(path, results))
    changes = [change for s in series for change in find_changes(s)]

Each point of a series is one run's median (`bench.report.summary.stage_summary`), runs in order of
their start time (the manifest's `started`, else the time in the run id). Change points come from
ruptures' PELT search with a least-squares cost on the log of the medians (so a change is a ratio):

- lone outliers are ignored: a point further than `OUTLIER_SIGMAS` noise sigmas from the running
  median of it and its two neighbours is replaced by that median before the search (a real step
  survives a 3-point running median; a single bad night does not), and a segment must hold at least
  `MIN_SEGMENT` runs;
- the penalty is calibrated on noise: `PENALTY_FACTOR` x sigma^2 x log(n), with sigma the series'
  robust noise scale (`bench.measure.stats.noise_scale`, floored at `NOISE_FLOOR`). On 400 seeds of
  30 nights with 3% Gaussian noise this reports a change in about 1% of noise-only series, finds
  a planted 10% step at the exact night in about 84% of them and within one night in about 97%, and
  reports a change in under 1% of noise-only series that hold one +50% outlier night.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bench.errors import ResultsError
from bench.measure.stats import describe, noise_scale
from bench.report.summary import stage_summary
from bench.schema import OUTCOME_STAGE

if TYPE_CHECKING:
    import pandas as pd

MIN_SEGMENT = 3
OUTLIER_SIGMAS = 4.0
PENALTY_FACTOR = 6.0
NOISE_FLOOR = 0.005  # 0.5%: below this the timer and the OS dominate; keeps constant series quiet
_RUN_ID_TIME = re.compile(r"^(\d{8}T\d{6}Z)")


@dataclass(frozen=True)
class Series:
    """One case, phase, stage and metric across runs (oldest first): each run's median."""

    case_id: str
    case: str
    phase: str
    stage: str
    metric: str
    unit: str
    run_ids: tuple[str, ...]
    started: tuple[str, ...]
    medians: tuple[float, ...]

    @property
    def name(self) -> str:
        phase = f" ({self.phase})" if self.phase == "cold" else ""
        return f"{self.case} · {self.stage}{phase} · {self.metric}"


@dataclass(frozen=True)
class ChangePoint:
    """A lasting change: the first run after it, the medians of the segments either side, their ratio."""

    case_id: str
    case: str
    phase: str
    stage: str
    metric: str
    unit: str
    run_id: str
    previous_run_id: str
    index: int
    median_before: float
    median_after: float
    ratio: float
    direction: Literal["up", "down"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- run order


def run_start_times(path: Any, results: pd.DataFrame) -> dict[str, pd.Timestamp]:
    """Start time of every run in `results`: manifest.json's `started` beside its results.csv, else the
    UTC time in the run id, else its earliest row timestamp; ResultsError naming a run with none."""
    import json

    import pandas as pd

    from bench.store import MANIFEST_FILE, find_results_files

    starts: dict[str, pd.Timestamp] = {}
    for file in find_results_files(path):
        manifest = Path(file).parent / MANIFEST_FILE
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            starts[str(data["run_id"])] = pd.Timestamp(data["started"]).tz_convert("UTC")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no usable manifest: the run id or the rows say when
    for run_id in results["run_id"].dropna().unique():
        run_id = str(run_id)
        if run_id in starts:
            continue
        match = _RUN_ID_TIME.match(run_id)
        if match:
            starts[run_id] = pd.Timestamp(pd.to_datetime(match.group(1), format="%Y%m%dT%H%M%SZ", utc=True))
            continue
        stamps = results.loc[results["run_id"] == run_id, "timestamp"].dropna()
        if stamps.empty:
            raise ResultsError(f"run {run_id}: no start time (no manifest.json, no time in the run id, no timestamps)")
        starts[run_id] = stamps.min()
    return starts


# --------------------------------------------------------------------------- series


@dataclass(frozen=True)
class SeriesSet:
    series: list[Series]
    left_out: int  # run-case points left out: the case failed or was marked invalid in that run
    non_finite: int = 0  # NaN / inf values left out of the per-run medians


def build_series(
    results: pd.DataFrame,
    starts: dict[str, pd.Timestamp],
    *,
    metrics: Sequence[str] = ("latency", "peak_rss"),
    stages: Sequence[str] | None = None,
    include_invalid: bool = False,
) -> SeriesSet:
    """Series of per-run medians for every (case, phase, stage, metric) with `metrics` (and `stages`,
    when given: exact names or prefixes ending in `/`), over runs where the case finished ok."""
    import pandas as pd

    closing = results[results["stage"].astype("string") == OUTCOME_STAGE]
    bad = closing["status"].astype("string") != "ok"
    if "valid" in closing and not include_invalid:
        bad |= closing["valid"].astype("boolean").eq(False).fillna(False)
    excluded = set(zip(closing.loc[bad, "run_id"].astype(str), closing.loc[bad, "case_id"].astype(str)))

    metric = results["metric"].astype("string")
    phase = results["phase"].astype("string")
    keep = metric.isin(list(metrics)) & (phase.isna() | phase.isin(["cold", "measured"]))
    if stages:
        stage = results["stage"].astype("string")
        wanted = pd.Series(False, index=results.index)
        for name in stages:
            wanted |= stage.str.startswith(name) if name.endswith("/") else stage == name
        keep &= wanted
    selected = results[keep.fillna(False)]
    non_finite = int((~np.isfinite(selected["value"].to_numpy(dtype=np.float64, na_value=np.nan))).sum())
    summary = stage_summary(selected)
    if summary.empty:
        return SeriesSet([], len(excluded), non_finite)
    summary["phase"] = summary["phase"].astype("string").fillna("")
    pairs = list(zip(summary["run_id"].astype(str), summary["case_id"].astype(str)))
    dropped = np.array([pair in excluded for pair in pairs], dtype=bool)
    summary = summary[~dropped]
    labels = results.drop_duplicates("case_id").set_index("case_id")["case"].astype("string")
    units = results.drop_duplicates("metric").set_index("metric")["unit"].astype("string")
    summary = summary.assign(_start=summary["run_id"].astype(str).map(starts))
    summary = summary.sort_values(["_start", "run_id"], kind="stable")
    series: list[Series] = []
    for (case_id, run_phase, stage, name), group in summary.groupby(
        ["case_id", "phase", "stage", "metric"], observed=True, sort=True
    ):
        series.append(
            Series(
                str(case_id), str(labels.get(case_id, case_id)), str(run_phase), str(stage), str(name),
                str(units.get(name, "")), tuple(group["run_id"].astype(str)),
                tuple(t.isoformat() for t in group["_start"]), tuple(float(v) for v in group["median"]),
            )  # fmt: skip
        )
    return SeriesSet(series, int(len({p for p, d in zip(pairs, dropped) if d})), non_finite)


# --------------------------------------------------------------------------- change points


def change_indices(values: Sequence[float]) -> list[int]:
    """Indices of the first point after each lasting change in `values` (positive numbers, in order)."""
    import ruptures
    from scipy.ndimage import median_filter

    y = np.log(np.asarray(values, dtype=np.float64))
    if y.size < 2 * MIN_SEGMENT or not np.all(np.isfinite(y)):
        return []
    sigma = max(noise_scale(y), NOISE_FLOOR)
    running = median_filter(y, size=3, mode="nearest")
    cleaned = np.where(np.abs(y - running) > OUTLIER_SIGMAS * sigma, running, y)
    penalty = PENALTY_FACTOR * sigma**2 * math.log(y.size)
    breaks = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(cleaned.reshape(-1, 1)).predict(pen=penalty)
    return [int(b) for b in breaks[:-1]]


def find_changes(series: Series) -> list[ChangePoint]:
    """The change points of one series, each with the medians of the segments before and after it."""
    values = series.medians
    if any(not (math.isfinite(v) and v > 0) for v in values):
        return []
    indices = change_indices(values)
    bounds = [0, *indices, len(values)]
    changes = []
    for k, index in enumerate(indices):
        before = describe(values[bounds[k] : index]).median
        after = describe(values[index : bounds[k + 2]]).median
        ratio = after / before
        changes.append(
            ChangePoint(
                series.case_id, series.case, series.phase, series.stage, series.metric, series.unit,
                series.run_ids[index], series.run_ids[index - 1], index, before, after, ratio,
                "up" if ratio > 1 else "down",
            )  # fmt: skip
        )
    return changes


def find_all_changes(series: Iterable[Series]) -> list[ChangePoint]:
    return [change for s in series for change in find_changes(s)]


# --------------------------------------------------------------------------- charts


def chart_file_name(series: Series) -> str:
    """A file name for a series' chart: case id, stage, phase and metric, filesystem-safe."""
    parts = [series.case_id, series.stage, series.phase or "run", series.metric]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) + ".png"


def plot_series(series: Series, changes: Sequence[ChangePoint], path: Path) -> Path:
    """A PNG of the series (medians per run, in order) with each change point marked and the segment
    medians drawn; the x axis names the runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, unit = _display_scale(series.unit, series.medians)
    x = np.arange(len(series.medians))
    y = np.asarray(series.medians) * scale
    figure, axes = plt.subplots(figsize=(max(6.0, 0.25 * len(x) + 3), 3.6), layout="constrained")
    axes.plot(x, y, marker="o", markersize=3, linewidth=1, color="tab:blue", label="run median")
    bounds = [0, *(c.index for c in changes), len(x)]
    for k in range(len(bounds) - 1):
        level = describe(series.medians[bounds[k] : bounds[k + 1]]).median * scale
        axes.hlines(level, bounds[k] - 0.4, bounds[k + 1] - 0.6, colors="tab:gray", linestyles="--", linewidth=1,
                    label="segment median" if k == 0 else None)  # fmt: skip
    for change in changes:
        colour = "tab:red" if change.direction == "up" else "tab:green"
        axes.axvline(change.index - 0.5, color=colour, linewidth=1.5,
                     label=f"change x{change.ratio:.3f} at {change.run_id}")  # fmt: skip
    step = max(1, len(x) // 12)
    axes.set_xticks(x[::step], [series.run_ids[i][:15] for i in x[::step]], rotation=45, ha="right", fontsize=7)
    axes.set_xlabel("run (oldest first)")
    axes.set_ylabel(f"{series.metric} median ({unit})")
    axes.set_title(series.name, fontsize=9)
    axes.legend(fontsize=7, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _display_scale(unit: str, values: Sequence[float]) -> tuple[float, str]:
    if unit == "s":
        return (1e3, "ms") if max(values, default=0.0) < 1.0 else (1.0, "s")
    if unit == "bytes":
        return 1.0 / (1 << 20), "MiB"
    return 1.0, unit
