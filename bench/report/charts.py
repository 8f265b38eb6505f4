"""The report's charts, drawn with matplotlib's object API on the Agg canvas (no display needed).

Each function takes the frames the report already has (`case_summary`, `stage_summary`, the raw
results, the published matches) and returns a `Chart`: a titled matplotlib Figure, or no figure and
the reason (a chart without data is skipped with a note, never drawn empty). Every figure here comes
from `bench.measure.stats` through the summaries; nothing is re-derived.

    charts = all_charts(results, summary, stages, matches)
    for chart in charts: chart.save(out_dir)      # <name>.png and <name>.svg
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.measure.stats import describe_groups, iter_per_s_groups, step_seconds

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from bench.report.matching import PublishedMatch

#: Groups of the per-stage breakdown: label -> stages whose medians it stacks, in pipeline order.
BREAKDOWN_GROUPS: dict[str, tuple[str, ...]] = {
    "text encoders": ("tokenize", "text_encoder", "text_encoder_2"),
    "UNet steps (denoising loop)": ("diffusion",),
    "VAE": ("vae_encoder", "vae_decoder"),
}
_DPI = 110
#: Most cases one chart shows (bars / lines beyond this are unreadable); the title says when cut.
MAX_BARS = 24
MAX_LINES = 10


@dataclass
class Chart:
    """One chart: `figure` is None when there was nothing to draw, and `skipped` says why."""

    name: str  # file stem
    title: str
    figure: Figure | None = None
    skipped: str | None = None

    def save(self, folder: Path) -> list[Path]:
        """Write <name>.png and <name>.svg into `folder`; nothing for a skipped chart."""
        if self.figure is None:
            return []
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{self.name}.png", folder / f"{self.name}.svg"]
        self.figure.savefig(paths[0], dpi=_DPI)
        self.figure.savefig(paths[1])
        return paths

    def png_data_uri(self) -> str:
        """The PNG as a data: URI, for a self-contained HTML page."""
        assert self.figure is not None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=_DPI)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _case_labels(summary: pd.DataFrame) -> list[str]:
    """Short case labels: the model and compute unit, plus the run when several runs are shown."""
    several_runs = summary["run_id"].nunique() > 1
    labels = []
    for record in summary.to_dict("records"):
        label = f"{record.get('model', '')}\n{record.get('compute_unit', '')}"
        if several_runs:
            label += f"\n{str(record['run_id'])[:16]}"
        labels.append(label)
    return labels


def _first_cases(summary: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, str]:
    """The first `limit` cases, and a title suffix saying so when some were left out."""
    if len(summary) <= limit:
        return summary, ""
    return summary.iloc[:limit], f" (first {limit} of {len(summary)} cases)"


def _measured_latency(stages: pd.DataFrame) -> pd.DataFrame:
    return stages[(stages["phase"].astype("string") == "measured") & (stages["metric"].astype("string") == "latency")]


def stage_breakdown(summary: pd.DataFrame, stages: pd.DataFrame) -> Chart:
    """Stacked bars per case: median seconds of the encoders, the denoising loop and the VAE."""
    chart = Chart("stage_breakdown", "Per-stage latency per case (median of measured repeats)")
    ok, cut = _first_cases(summary[summary["status"].astype("string") == "ok"], MAX_BARS)
    latency = _measured_latency(stages)
    if ok.empty or latency.empty:
        chart.skipped = "no measured stage latencies"
        return chart
    wanted = [stage for group in BREAKDOWN_GROUPS.values() for stage in group]
    latency = latency[latency["stage"].astype("string").isin(wanted)]
    medians = {(str(r), str(c), str(s)): float(m)
               for r, c, s, m in zip(latency["run_id"], latency["case_id"], latency["stage"], latency["median"])}  # fmt: skip
    figure = _figure(max(6.0, 1.1 * len(ok) + 2), 4.8)
    axes = figure.add_subplot()
    bottoms = [0.0] * len(ok)
    keys = [(str(r["run_id"]), str(r["case_id"])) for r in ok.to_dict("records")]
    drawn = False
    for label, group in BREAKDOWN_GROUPS.items():
        heights = [sum(medians.get((*key, stage), 0.0) for stage in group) for key in keys]
        if not any(heights):
            continue
        axes.bar(range(len(keys)), heights, bottom=bottoms, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
        drawn = True
    if not drawn:
        chart.skipped = "no encoder, denoising-loop or VAE spans measured"
        return chart
    axes.set_xticks(range(len(keys)), _case_labels(ok), fontsize=7, rotation=20, ha="right")
    axes.set_ylabel("latency (s)")
    axes.set_title(chart.title + cut, fontsize=11)
    axes.legend(loc="upper left", fontsize=8, framealpha=0.9)
    chart.figure = figure
    return chart


def iter_per_s_heatmap(results: pd.DataFrame) -> Chart:
    """Compute unit x attention heat map of iter/s (steps pooled per cell, of the most common
    quantization and resolution so cells compare like with like)."""
    chart = Chart("iter_per_s_heatmap", "Denoising speed by compute unit and attention (iter/s)")
    measured = results[(results["phase"].astype("string") == "measured") & (results["metric"].astype("string") == "latency")]
    steps = step_seconds(measured, ("run_id", "case_id", "compute_unit", "attention", "quantization", "resolution"))
    if steps.empty:
        chart.skipped = "no denoising steps measured"
        return chart
    quantization = steps["quantization"].astype("string").mode().iloc[0]
    resolution = steps["resolution"].mode().iloc[0]
    steps = steps[(steps["quantization"].astype("string") == quantization) & (steps["resolution"] == resolution)]
    rates = iter_per_s_groups(steps, ["compute_unit", "attention"])
    rates = rates[rates["iter_per_s"].notna()]
    units = sorted(rates["compute_unit"].astype(str).unique())
    attentions = sorted(rates["attention"].astype(str).unique())
    import numpy as np

    grid = np.full((len(units), len(attentions)), np.nan)
    for record in rates.to_dict("records"):
        grid[units.index(str(record["compute_unit"])), attentions.index(str(record["attention"]))] = record["iter_per_s"]
    figure = _figure(1.8 * len(attentions) + 3, 1.0 * len(units) + 2)
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="viridis", aspect="auto")
    for (row, column), value in np.ndenumerate(grid):
        if math.isfinite(value):
            bright = value > np.nanmean(grid)
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", color="black" if bright else "white")
    axes.set_xticks(range(len(attentions)), attentions)
    axes.set_yticks(range(len(units)), units)
    axes.set_xlabel("attention implementation")
    axes.set_ylabel("compute unit")
    axes.set_title(f"{chart.title}\n{quantization}, {resolution}x{resolution}", fontsize=10)
    colorbar = figure.colorbar(image, ax=axes)
    colorbar.set_label("iter/s (denoising steps per second)")
    chart.figure = figure
    return chart


def latency_vs_memory(summary: pd.DataFrame) -> Chart:
    """End-to-end median vs peak memory, one colour per quantization variant, PSNR beside each point."""
    chart = Chart("latency_vs_memory", "End-to-end latency vs peak memory per quantization variant")
    memory_column = "peak_footprint_bytes" if summary["peak_footprint_bytes"].notna().any() else "peak_rss_bytes"
    points = summary[summary["end_to_end_s"].notna() & summary[memory_column].notna()]
    if points.empty:
        chart.skipped = "no case with both an end-to-end latency and a peak memory"
        return chart
    figure = _figure(7.5, 4.8)
    axes = figure.add_subplot()
    for quantization, group in points.groupby(points["quantization"].astype(str), sort=True):
        axes.scatter(group[memory_column] / (1 << 20), group["end_to_end_s"], label=quantization, s=40)
        for record in group.to_dict("records"):
            psnr = record.get("psnr_db")
            if psnr is not None and math.isfinite(psnr):
                axes.annotate(f"{psnr:.1f} dB", (record[memory_column] / (1 << 20), record["end_to_end_s"]),
                              textcoords="offset points", xytext=(5, 4), fontsize=8)  # fmt: skip
    what = "peak footprint" if memory_column == "peak_footprint_bytes" else "peak RSS"
    axes.set_xlabel(f"{what} (MiB)")
    axes.set_ylabel("end-to-end latency, median (s)")
    axes.set_title(chart.title + ("\n(labels: UNet PSNR vs baseline)" if points["psnr_db"].notna().any() else ""), fontsize=10)
    axes.legend(title="quantization", fontsize=8)
    chart.figure = figure
    return chart


def measured_vs_published(matches: Sequence[PublishedMatch]) -> Chart:
    """Per matched case: measured end-to-end beside each published device's, with the ratio."""
    chart = Chart("measured_vs_published", "Measured vs published end-to-end latency")
    pairs = [(m, f) for m in matches for f in m.figures if math.isfinite(m.end_to_end_s) and math.isfinite(f.end_to_end_s)]
    if not pairs:
        chart.skipped = "no case matches a published figure"
        return chart
    figure = _figure(max(6.0, 1.4 * len(pairs) + 2), 4.8)
    axes = figure.add_subplot()
    positions = range(len(pairs))
    width = 0.38
    axes.bar([p - width / 2 for p in positions], [m.end_to_end_s for m, _ in pairs], width, label="measured")
    axes.bar([p + width / 2 for p in positions], [f.end_to_end_s for _, f in pairs], width, label="published")
    for position, (match, figure_row) in zip(positions, pairs):
        top = max(match.end_to_end_s, figure_row.end_to_end_s)
        axes.annotate(f"×{figure_row.ratio_end_to_end:.2f}", (position, top), textcoords="offset points",
                      xytext=(0, 3), ha="center", fontsize=8)  # fmt: skip
    labels = [f"{f.device}{'*' if f.reduce_memory else ''}\n{m.model}\n({m.kind} match)" for m, f in pairs]
    axes.set_xticks(list(positions), labels, fontsize=7)
    axes.set_ylabel("end-to-end latency (s)")
    axes.set_title(chart.title + " (×ratio = measured / published)", fontsize=10)
    axes.legend(fontsize=8)
    chart.figure = figure
    return chart


def step_trace(results: pd.DataFrame, summary: pd.DataFrame) -> Chart:
    """Median seconds of each denoising step over the measured repeats, per case: the first steps
    against the steady state."""
    chart = Chart("step_trace", "Per-step latency of the denoising loop (median over measured repeats)")
    steady_note = "\ndashed: steady state, the median of the steps after the first"
    measured = results[(results["phase"].astype("string") == "measured") & (results["metric"].astype("string") == "latency")]
    shown, cut = _first_cases(summary[summary["status"].astype("string") == "ok"], MAX_LINES)
    keep = set(zip(shown["run_id"].astype(str), shown["case_id"].astype(str)))
    candidates = measured[measured["run_id"].astype(str).isin({r for r, _ in keep})
                          & measured["case_id"].astype(str).isin({c for _, c in keep})]  # fmt: skip
    steps = step_seconds(candidates)
    if steps.empty:
        chart.skipped = "no denoising steps measured"
        return chart
    per_step = describe_groups(steps, ["run_id", "case_id", "step"])
    per_step = per_step[[(str(r), str(c)) in keep for r, c in zip(per_step["run_id"], per_step["case_id"])]]
    labels = {(str(r["run_id"]), str(r["case_id"])): lbl.replace("\n", " ")
              for r, lbl in zip(summary.to_dict("records"), _case_labels(summary))}  # fmt: skip
    # Steady state: the median of every step after the first, over all measured repeats.
    later = steps[steps["step"] >= 1]
    steady = {(str(r), str(c)): m for r, c, m in
              zip(*(describe_groups(later, ["run_id", "case_id"])[k] for k in ("run_id", "case_id", "median")))}  # fmt: skip
    figure = _figure(8.0, 4.8)
    axes = figure.add_subplot()
    for (run_id, case_id), group in per_step.groupby(["run_id", "case_id"], sort=False, observed=True):
        group = group.sort_values("step")
        line = axes.plot(group["step"].astype(int), group["median"] * 1e3, marker="o", markersize=3,
                         label=labels.get((str(run_id), str(case_id)), str(case_id)))[0]  # fmt: skip
        level = steady.get((str(run_id), str(case_id)))
        if level is not None and math.isfinite(level) and len(group) > 2:
            axes.axhline(level * 1e3, color=line.get_color(), linestyle="--", linewidth=0.8, alpha=0.7)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("denoising step (index)")
    axes.set_ylabel("step latency, unet + scheduler (ms)")
    axes.set_title(chart.title + cut + (steady_note if axes.lines[len(keep):] else ""), fontsize=10)
    axes.legend(fontsize=7, ncols=2 if len(keep) > 6 else 1)
    chart.figure = figure
    return chart


def load_by_part(stages: pd.DataFrame, summary: pd.DataFrame) -> Chart:
    """Cold load (first load in a fresh worker) vs warm load (reloads inside measured repeats, under
    reduce_memory) per model part, one bar per case."""
    chart = Chart("load_by_part", "Cold vs warm load per model part (median seconds)")
    shown, cut = _first_cases(summary, MAX_LINES)
    labels = {(str(r["run_id"]), str(r["case_id"])): lbl.replace("\n", " ")
              for r, lbl in zip(shown.to_dict("records"), _case_labels(summary.iloc[: len(shown)]))}  # fmt: skip
    latency = stages[stages["metric"].astype("string") == "latency"]
    loads = latency[latency["stage"].astype("string").str.startswith("load/").fillna(False)]
    loads = loads[loads["phase"].astype("string").isin(["cold", "measured"])]
    if loads.empty:
        chart.skipped = "no load spans recorded"
        return chart
    parts = list(dict.fromkeys(str(s).split("/", 1)[1] for s in loads["stage"].astype(str)))
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for run_id, case_id, phase, stage, median in zip(loads["run_id"].astype(str), loads["case_id"].astype(str),
                                                     loads["phase"].astype(str), loads["stage"].astype(str), loads["median"]):
        if (run_id, case_id) in labels:
            values.setdefault((phase, run_id, case_id), {})[stage.split("/", 1)[1]] = float(median)
    series = [(f"{'cold' if phase == 'cold' else 'warm'} · {labels[(run_id, case_id)]}", parts_, phase != "cold")
              for (phase, run_id, case_id), parts_ in sorted(values.items(), key=lambda item: item[0][0] != "cold")]
    has_warm = any(is_warm for _, _, is_warm in series)
    figure = _figure(max(7.0, 0.3 * len(series) * len(parts) + 3), 4.8)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(series))
    for index, (label, by_part, is_warm) in enumerate(series):
        offsets = [p - 0.4 + width * (index + 0.5) for p in range(len(parts))]
        axes.bar(offsets, [by_part.get(part, 0.0) for part in parts], width, label=label,
                 hatch="//" if is_warm else None)  # fmt: skip
    axes.set_xticks(range(len(parts)), parts)
    axes.set_xlabel("model part")
    axes.set_ylabel("load time (s)")
    note = "" if has_warm else "\n(no warm loads: parts are loaded once unless reduce_memory is on)"
    axes.set_title(chart.title + cut + note, fontsize=10)
    axes.legend(fontsize=7, ncols=2 if len(series) > 6 else 1)
    chart.figure = figure
    return chart


def all_charts(
    results: pd.DataFrame,
    summary: pd.DataFrame,
    stages: pd.DataFrame,
    matches: Sequence[PublishedMatch] | None = None,
) -> list[Chart]:
    """Every chart of the report, in report order; `matches` None leaves out the published chart."""
    charts = [
        stage_breakdown(summary, stages),
        iter_per_s_heatmap(results),
        latency_vs_memory(summary),
        step_trace(results, summary),
        load_by_part(stages, summary),
    ]
    if matches is not None:
        charts.insert(3, measured_vs_published(matches))
    return charts
