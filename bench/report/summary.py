"""Per-case summary of raw results, computed with `bench.measure.stats` from the raw span rows.

    summary = case_summary(bench.load_results("results/<run-id>"))
    render_summary(summary, console)

`iter_per_s` is 1 / median step time over all measured repeats, a step being its `unet` (or
`refiner`) span plus its `scheduler` span. Latencies are medians of measured repeats; warm-up
repeats and the cold load never enter them. `stage_summary` gives the full statistics (median,
min, max, IQR, p90, p99) of every stage and metric, per case and phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.measure.stats import describe_groups, iter_per_s_groups, step_seconds
from bench.schema import OUTCOME_STAGE

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

#: Stages shown as their own summary column, in pipeline order, with their table headers.
STAGE_COLUMNS: dict[str, str] = {
    "tokenize": "tokenize",
    "text_encoder": "text_enc",
    "text_encoder_2": "text_enc2",
    "vae_encoder": "vae_enc",
    "unet": "unet/step",
    "scheduler": "sched/step",
    "refiner": "refiner/step",
    "vae_decoder": "vae_dec",
}

#: A case's key in every summary: the same case id in two runs is two summary rows.
CASE_KEY: tuple[str, str] = ("run_id", "case_id")
#: Columns copied from a case's rows into its summary row (the case and where it ran).
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run_id", "case_id", "case", "suite", "model", "engine", "compute_unit", "attention", "quantization",
    "resolution", "steps", "scheduler", "guidance", "batch", "reduce_memory", "refiner", "strength", "seed",
    "device", "device_name", "chip", "os", "host",
)  # fmt: skip
_LOAD_STAGES = r"^(compile|load|first_predict)/"


def stage_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Statistics of every (run, case, phase, stage, metric) sample: n, median, mean, min, max, q1,
    q3, iqr, p90, p99. Per-step stages pool all steps of all repeats of the phase."""
    keyed = results[results["stage"].astype("string") != OUTCOME_STAGE]
    return describe_groups(keyed, [*CASE_KEY, "phase", "stage", "metric"])


def step_times(results: pd.DataFrame) -> pd.DataFrame:
    """Seconds per (run, case, repeat, step) of the measured repeats (see `bench.measure.stats`)."""
    measured = results[(results["phase"].astype("string") == "measured") & (results["metric"].astype("string") == "latency")]
    return step_seconds(measured, CASE_KEY)


def case_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, case) in first-seen order: identity, status (and `valid` / `invalid_reason`
    when the results carry them), end-to-end statistics, iter/s, stage medians, cold load, warm load
    (parts reloaded inside measured repeats, i.e. under reduce_memory; NaN otherwise), peak memory and
    PSNR."""
    import numpy as np
    import pandas as pd

    frame = results
    keys = list(CASE_KEY)
    # Every figure is grouped by an integer case number (first-seen order) on a frame of only the
    # columns figures need: filtering and grouping then move no label strings (a million rows: ~5x faster).
    number = frame.groupby(keys, sort=False, observed=True, dropna=False).ngroup().to_numpy()
    slim = pd.DataFrame({"_case": number, **{c: frame[c] for c in ("phase", "stage", "step", "repeat", "metric", "value")}})
    stage, metric = slim["stage"], slim["metric"]
    identity = [c for c in IDENTITY_COLUMNS if c in frame.columns]
    firsts = np.unique(number, return_index=True)[1]
    summary = frame[identity].iloc[firsts].reset_index(drop=True).assign(_case=np.arange(firsts.size))

    closing = frame[(stage == OUTCOME_STAGE).to_numpy()].assign(_case=number[(stage == OUTCOME_STAGE).to_numpy()])
    closing = closing.drop_duplicates("_case", keep="last")
    closing_columns = [c for c in ("status", "error", "valid", "invalid_reason") if c in frame.columns]
    summary = summary.merge(closing[["_case", *closing_columns]], on="_case", how="left")
    summary["status"] = summary["status"].astype("string").fillna("incomplete")

    latency = slim[(metric == "latency").to_numpy()]
    measured = latency[(latency["phase"] == "measured").to_numpy()]
    e2e = describe_groups(measured[(measured["stage"] == "end_to_end").to_numpy()], ["_case"])
    e2e = e2e.rename(columns={"n": "repeats", "median": "end_to_end_s", "min": "end_to_end_min_s",
                              "max": "end_to_end_max_s", "iqr": "end_to_end_iqr_s", "p90": "end_to_end_p90_s"})
    summary = summary.merge(e2e[["_case", "repeats", "end_to_end_s", "end_to_end_min_s", "end_to_end_max_s",
                                 "end_to_end_iqr_s", "end_to_end_p90_s"]], on="_case", how="left")  # fmt: skip
    summary["repeats"] = summary["repeats"].fillna(0).astype(int)

    rates = iter_per_s_groups(step_seconds(measured, ["_case"]), ["_case"])
    summary = summary.merge(rates, on="_case", how="left")

    per_stage = describe_groups(measured[measured["stage"].isin(list(STAGE_COLUMNS)).to_numpy()], ["_case", "stage"])
    if not per_stage.empty:
        wide = per_stage.pivot(index="_case", columns="stage", values="median")
        wide.columns = [f"{name}_s" for name in wide.columns.astype(str)]
        summary = summary.merge(wide.reset_index(), on="_case", how="left")
    for name in STAGE_COLUMNS:
        if f"{name}_s" not in summary:
            summary[f"{name}_s"] = float("nan")

    cold = latency[((latency["phase"] == "cold") & _matches(latency["stage"], _LOAD_STAGES)).to_numpy()]
    cold_load = cold.groupby("_case", observed=True, sort=False)["value"].sum().rename("cold_load_s").reset_index()
    summary = summary.merge(cold_load, on="_case", how="left")
    # Warm load: parts loaded again inside measured repeats (reduce_memory), files already cached;
    # the sum over parts of each part's median.
    warm = measured[_matches(measured["stage"], r"^load/").to_numpy()]
    if not warm.empty:
        per_part = describe_groups(warm, ["_case", "stage"])
        warm_load = per_part.groupby("_case", observed=True, sort=False)["median"].sum().rename("warm_load_s")
        summary = summary.merge(warm_load.reset_index(), on="_case", how="left")
    else:
        summary["warm_load_s"] = float("nan")

    for name in ("peak_rss", "peak_footprint"):
        peaks = slim[(metric == name).to_numpy()].groupby("_case", observed=True, sort=False)["value"].max()
        summary = summary.merge(peaks.rename(f"{name}_bytes").reset_index(), on="_case", how="left")
    psnr = describe_groups(slim[(metric == "psnr").to_numpy()], ["_case"])
    summary = summary.merge(psnr[["_case", "median"]].rename(columns={"median": "psnr_db"}), on="_case", how="left")
    for column in ("cold_load_s", "warm_load_s", "peak_rss_bytes", "peak_footprint_bytes", "psnr_db", "iter_per_s"):
        summary[column] = pd.to_numeric(summary[column], errors="coerce").astype("float64")
    return summary.drop(columns="_case")


def _matches(labels: pd.Series, pattern: str) -> pd.Series:
    """Which labels match `pattern` (re.match); a categorical is matched once per category."""
    import pandas as pd

    if isinstance(labels.dtype, pd.CategoricalDtype):
        categories = labels.cat.categories
        return labels.isin(categories[categories.astype("string").str.match(pattern).fillna(False).to_numpy(dtype=bool)])
    return labels.astype("string").str.match(pattern).fillna(False).astype(bool)


def format_seconds(value: Any) -> str:
    if not _present(value):
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}µs"
    if value < 1.0:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def format_bytes(value: Any) -> str:
    if not _present(value):
        return "-"
    if value >= 1 << 30:
        return f"{value / (1 << 30):.2f}GiB"
    return f"{value / (1 << 20):.0f}MiB"


def _status_text(status: str) -> str:
    colour = {"ok": "green", "skipped": "yellow", "error": "red", "timeout": "red"}.get(status, "magenta")
    return f"[{colour}]{status}[/{colour}]"


def render_summary(summary: pd.DataFrame, console: Console, title: str = "Summary") -> None:
    """Two rich tables: per case (status, end-to-end median, iter/s, cold load, peak memory) and
    per-stage medians; a line per failed case with its error."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if summary.empty:
        console.print("No cases ran.")
        return
    records = summary.to_dict("records")
    labels, common = _distinct_labels([str(r["case"]) for r in records])
    if common:
        title = f"{title} · {common}"
    show_valid = "valid" in summary and summary["valid"].notna().any()
    show_footprint = summary["peak_footprint_bytes"].notna().any()
    show_psnr = summary["psnr_db"].notna().any()
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, padding=(0, 1))
    table.add_column("#", justify="right")
    table.add_column("case", overflow="fold", min_width=22)
    table.add_column("status")
    if show_valid:
        table.add_column("valid")
    table.add_column("end-to-end\nmedian", justify="right")
    table.add_column("iter/s", justify="right")
    table.add_column("cold\nload", justify="right")
    table.add_column("peak\nRSS", justify="right")
    if show_footprint:
        table.add_column("peak\nfootprint", justify="right")
    if show_psnr:
        table.add_column("PSNR\ndB", justify="right")
    for index, record in enumerate(records, 1):
        iter_per_s = record["iter_per_s"]
        cells = [str(index), escape(labels[index - 1]), _status_text(str(record["status"]))]
        if show_valid:
            cells.append(_valid_text(record.get("valid")))
        cells += [
            format_seconds(record["end_to_end_s"]),
            _rate(iter_per_s),
            format_seconds(record["cold_load_s"]),
            format_bytes(record["peak_rss_bytes"]),
        ]
        if show_footprint:
            cells.append(format_bytes(record["peak_footprint_bytes"]))
        if show_psnr:
            cells.append(f"{record['psnr_db']:.1f}" if _present(record["psnr_db"]) else "-")
        table.add_row(*cells)
    console.print(table)

    stages = [s for s in STAGE_COLUMNS if summary[f"{s}_s"].notna().any()]
    if stages:
        medians = Table(title="stage medians over the measured repeats, in ms", title_justify="left",
                        header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
        medians.add_column("#", justify="right")
        for stage in stages:
            medians.add_column(STAGE_COLUMNS[stage], justify="right")
        for index, record in enumerate(records, 1):
            medians.add_row(str(index), *[_milliseconds(record[f"{stage}_s"]) for stage in stages])
        console.print(medians)

    problems: dict[tuple[str, str], list[str]] = {}  # (status, error) -> case numbers; said once
    for index, record in enumerate(records, 1):
        if record["status"] != "ok" and _present(record["error"]):
            problems.setdefault((str(record["status"]), str(record["error"])), []).append(f"#{index}")
    for (status, error), numbers in problems.items():
        console.print(f"  {', '.join(numbers)} {status}: {escape(error)}")
    invalid: dict[str, list[str]] = {}  # reason -> case numbers
    for index, record in enumerate(records, 1):
        if record.get("valid") is False and record["status"] == "ok" and _present(record.get("invalid_reason")):
            invalid.setdefault(str(record["invalid_reason"]), []).append(f"#{index}")
    for reason, numbers in invalid.items():
        console.print(f"  {', '.join(numbers)} invalid: {escape(reason)}")


def _valid_text(value: Any) -> str:
    if not _present(value):
        return "-"
    return "[green]yes[/green]" if bool(value) else "[red]no[/red]"


def _distinct_labels(labels: list[str]) -> tuple[list[str], str]:
    """Labels without the words every label shares (shown once, in the title), to keep rows short."""
    if len(labels) < 2:
        return labels, ""
    words = [label.split(" ") for label in labels]
    common = [w for w in words[0] if all(w in other for other in words[1:])]
    if not common:
        return labels, ""
    short = [" ".join(w for w in ws if w not in common) or " ".join(ws) for ws in words]
    return short, " ".join(common)


def _present(value: Any) -> bool:
    import pandas as pd

    return value is not None and not bool(pd.isna(value))


def _rate(value: Any) -> str:
    if not _present(value):
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _milliseconds(value: Any) -> str:
    if not _present(value):
        return "-"
    ms = value * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"
