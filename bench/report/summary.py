"""Per-case summary of raw results: medians computed here, at report time, from the raw rows.

    summary = case_summary(bench.load_results("results/<run-id>"))
    render_summary(summary, console)

`iter_per_s` is 1 / median step time over all measured repeats, a step being its `unet` (or
`refiner`) span plus its `scheduler` span (DESIGN.md). Latencies are medians of measured repeats;
warm-up repeats and the cold load never enter them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.measure.recorder import STEP_STAGES

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


def step_times(measured_latency: pd.DataFrame) -> pd.Series:
    """Seconds per (case, repeat, step): the sum of that step's unet/refiner/scheduler spans."""
    steps = measured_latency[measured_latency["stage"].isin(STEP_STAGES) & measured_latency["step"].notna()]
    return steps.groupby(["case_id", "repeat", "step"], observed=True)["value"].sum()


def case_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, case) in first-seen order with medians, iter/s, cold load, peaks, status."""
    import pandas as pd

    frame = results.copy()
    for column in ("stage", "metric", "phase", "status"):
        frame[column] = frame[column].astype("string")
    frame["key"] = frame["run_id"].astype("string") + "/" + frame["case_id"].astype("string")
    order = list(dict.fromkeys(frame["key"]))
    latency = frame[frame["metric"] == "latency"]
    measured = latency[latency["phase"] == "measured"]
    closing = frame[frame["stage"] == "case"].drop_duplicates("key", keep="last").set_index("key")

    records: list[dict[str, Any]] = []
    for key in order:
        rows = frame[frame["key"] == key]
        first = rows.iloc[0]
        record: dict[str, Any] = {
            "run_id": first["run_id"],
            "case_id": first["case_id"],
            "case": first["case"],
            "model": first["model"],
            "engine": first["engine"],
            "compute_unit": first["compute_unit"],
            "attention": first["attention"],
            "quantization": first["quantization"],
            "resolution": first["resolution"],
            "steps": first["steps"],
            "chip": first["chip"],
            "device": first["device"],
            "status": closing.loc[key, "status"] if key in closing.index else "incomplete",
            "error": closing.loc[key, "error"] if key in closing.index else None,
        }
        case_measured = measured[measured["key"] == key]
        e2e = case_measured[case_measured["stage"] == "end_to_end"]["value"]
        record["repeats"] = int(e2e.size)
        record["end_to_end_s"] = float(e2e.median()) if e2e.size else None
        record["end_to_end_min_s"] = float(e2e.min()) if e2e.size else None
        record["end_to_end_max_s"] = float(e2e.max()) if e2e.size else None
        per_step = step_times(case_measured.assign(case_id=key))
        record["iter_per_s"] = float(1.0 / per_step.median()) if per_step.size and per_step.median() > 0 else None
        for stage in STAGE_COLUMNS:
            values = case_measured[case_measured["stage"] == stage]["value"]
            record[f"{stage}_s"] = float(values.median()) if values.size else None
        cold = latency[(latency["key"] == key) & (latency["phase"] == "cold")]
        loads = cold[cold["stage"].str.match(r"^(compile|load|first_predict)/", na=False)]["value"]
        record["cold_load_s"] = float(loads.sum()) if loads.size else None
        for metric in ("peak_rss", "peak_footprint"):
            values = rows[rows["metric"] == metric]["value"]
            record[f"{metric}_bytes"] = float(values.max()) if values.size else None
        psnr = rows[rows["metric"] == "psnr"]["value"]
        record["psnr_db"] = float(psnr.median()) if psnr.size else None
        records.append(record)
    return pd.DataFrame.from_records(records)


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
    show_footprint = summary["peak_footprint_bytes"].notna().any()
    show_psnr = summary["psnr_db"].notna().any()
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, padding=(0, 1))
    table.add_column("#", justify="right")
    table.add_column("case", overflow="fold", min_width=22)
    table.add_column("status")
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
        cells = [
            str(index),
            escape(labels[index - 1]),
            _status_text(str(record["status"])),
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
