"""The report's tables as plain cells, and their three renderings: terminal (rich), markdown, HTML.

A `TextTable` is a title, headers and rows of already-formatted strings, built once from the
summaries; each format only lays them out, so the terminal, the markdown and the HTML report show the
same figures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.report.summary import STAGE_COLUMNS, format_bytes, format_seconds

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from bench.report.matching import PublishedMatch


@dataclass
class TextTable:
    """A titled table of formatted cells; `notes` are printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _present(value: Any) -> bool:
    try:
        return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) != "<NA>"
    except (TypeError, ValueError):
        return False


def _stated(value: Any) -> bool:
    return _present(value) and str(value) != ""


def _or_unstated(value: Any) -> str:
    return str(value) if _stated(value) else "not stated"


def _rate(value: Any) -> str:
    return f"{value:.2f}" if _present(value) else "-"


def _ratio(value: float) -> str:
    return f"{value:.2f}" if _present(value) and math.isfinite(value) else "-"


def _validity(record: dict[str, Any]) -> str:
    if "valid" not in record or not _present(record["valid"]):
        return "-"
    if bool(record["valid"]):
        return "valid"
    reason = record.get("invalid_reason")
    return f"invalid: {reason}" if _present(reason) else "invalid"


def case_table(summary: pd.DataFrame) -> TextTable:
    """Per case: status, validity, end-to-end median with IQR and p90, iter/s, loads, memory, PSNR."""
    several_runs = summary["run_id"].nunique() > 1 if "run_id" in summary else False
    table = TextTable("Cases", ["#", "case", "status", "validity", "end-to-end median", "IQR", "p90",
                                "iter/s", "cold load", "warm load", "peak RSS", "peak footprint", "PSNR dB"])  # fmt: skip
    if several_runs:
        table.headers.insert(2, "run")
    for index, record in enumerate(summary.to_dict("records"), 1):
        psnr = record.get("psnr_db")
        run = [str(record.get("run_id", ""))] if several_runs else []
        table.rows.append([
            str(index), str(record.get("case", "")), *run, str(record.get("status", "")),
            _validity(record), format_seconds(record.get("end_to_end_s")), format_seconds(record.get("end_to_end_iqr_s")),
            format_seconds(record.get("end_to_end_p90_s")), _rate(record.get("iter_per_s")),
            format_seconds(record.get("cold_load_s")), format_seconds(record.get("warm_load_s")),
            format_bytes(record.get("peak_rss_bytes")), format_bytes(record.get("peak_footprint_bytes")),
            f"{psnr:.1f}" if _present(psnr) else "-",
        ])  # fmt: skip
        if record.get("status") != "ok" and _present(record.get("error")):
            table.notes.append(f"#{index} {record['status']}: {record['error']}")
    return table


def stage_table(summary: pd.DataFrame, stages: pd.DataFrame) -> TextTable:
    """Every measured stage of every case: samples, median, IQR, p90 (from `stage_summary`)."""
    table = TextTable("Stages (measured repeats; per-step stages pool all steps)",
                      ["#", "stage", "n", "median", "IQR", "p90", "p99"])  # fmt: skip
    numbers = {(str(r["run_id"]), str(r["case_id"])): i for i, r in enumerate(summary.to_dict("records"), 1)}
    measured = stages[(stages["phase"].astype("string") == "measured") & (stages["metric"].astype("string") == "latency")]
    order = {name: i for i, name in enumerate(["end_to_end", "diffusion", *STAGE_COLUMNS])}
    records = sorted(measured.to_dict("records"),
                     key=lambda r: (numbers.get((str(r["run_id"]), str(r["case_id"])), 0), order.get(str(r["stage"]), 99),
                                    str(r["stage"])))  # fmt: skip
    for record in records:
        number = numbers.get((str(record["run_id"]), str(record["case_id"])))
        if number is None:
            continue
        table.rows.append([str(number), str(record["stage"]), str(int(record["n"])), format_seconds(record["median"]),
                           format_seconds(record["iqr"]), format_seconds(record["p90"]), format_seconds(record["p99"])])  # fmt: skip
    return table


def match_table(matches: Sequence[PublishedMatch]) -> TextTable:
    """Each case beside its published figures and the ratio measured / published."""
    table = TextTable("Against published figures (ratio = measured / published; end-to-end > 1 is slower, iter/s > 1 faster)",
                      ["#", "case", "this machine", "measured e2e", "measured iter/s", "published device", "published e2e",
                       "published iter/s", "ratio e2e", "ratio iter/s", "match", "source"])  # fmt: skip
    starred = False
    for index, match in enumerate(matches, 1):
        machine = match.machine.name or match.machine.device
        if match.machine.chip and match.machine.chip not in machine:
            machine += f" ({match.machine.chip})"
        head = [str(index), match.case, machine, format_seconds(match.end_to_end_s), _rate(match.iter_per_s)]
        if not match.figures:
            table.rows.append([*head, "-", "-", "-", "-", "-", match.kind, match.note])
            continue
        for figure in match.figures:
            star = "*" if figure.reduce_memory else ""
            starred = starred or bool(star)
            approx = "~" if figure.approximate else ""
            table.rows.append([*head, figure.device + star, approx + format_seconds(figure.end_to_end_s),
                               _rate(figure.iter_per_s), _ratio(figure.ratio_end_to_end), _ratio(figure.ratio_iter_per_s),
                               match.kind, f"{figure.table}, {figure.date or 'undated'}"])  # fmt: skip
        table.notes.append(f"#{index}: {match.note}")
    if starred:
        table.notes.append("* Apple ran these devices with reduceMemory (adds significant end-to-end overhead)")
    return table


def published_tables(frame: pd.DataFrame, metric: str | None = None) -> list[TextTable]:
    """`bench published`: one table per source table (titled with its source and date, marked when
    not current), one row per device and configuration."""
    tables: list[TextTable] = []
    for (source, status, date), group in frame.groupby(["table", "status", "date"], sort=False, dropna=False):
        mark = "" if status == "current" else f" [{str(status).upper()}]"
        table = TextTable(f"{source} · {date if isinstance(date, str) else 'undated'}{mark}", [])
        table.headers = ["model", "device", "compute unit", "attention", "weights", "resolution", "steps"]
        if metric in (None, "end_to_end"):
            table.headers.append("end-to-end")
        if metric in (None, "iter_per_s"):
            table.headers.append("iter/s")
        starred = False
        for record in group.to_dict("records"):
            star = "*" if record["reduce_memory"] else ""
            starred = starred or bool(star)
            approx = "~" if record["approximate"] else ""
            weights = record["quantization"] if _stated(record["quantization"]) else record["quantization_label"]
            row = [_or_unstated(record["model_label"]), f"{record['device']}{star}", _or_unstated(record["compute_unit"]),
                   _or_unstated(record["attention"]), _or_unstated(weights),
                   f"{record['resolution']}x{record['resolution']}" if _present(record["resolution"]) else "not stated",
                   _or_unstated(record["steps"])]  # fmt: skip
            if metric in (None, "end_to_end"):
                row.append(approx + format_seconds(record["end_to_end_s"]))
            if metric in (None, "iter_per_s"):
                row.append(_rate(record["iter_per_s"]))
            table.rows.append(row)
        if starred:
            table.notes.append("* reduceMemory enabled on this device (Apple's star: significant end-to-end overhead)")
        table.notes.append(f"source: {group['source_url'].iloc[0]}")
        tables.append(table)
    return tables


# --- renderings -------------------------------------------------------------------------------


def render_term(table: TextTable, console: Console) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rich_table = Table(title=table.title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                       pad_edge=False)  # fmt: skip
    for header in table.headers:
        rich_table.add_column(header, overflow="fold")
    for row in table.rows:
        rich_table.add_row(*(escape(str(cell)) for cell in row))
    console.print(rich_table)
    for note in table.notes:
        console.print("  " + escape(note))


def render_matches_term(matches: Sequence[PublishedMatch], console: Console) -> None:
    render_term(match_table(matches), console)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(table: TextTable) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
             "|" + "---|" * len(table.headers)]  # fmt: skip
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"- {_md_cell(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"


def render_html(table: TextTable) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (f"<h2>{html.escape(table.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<ul class='notes'>{notes}</ul>" if notes else ""))  # fmt: skip
