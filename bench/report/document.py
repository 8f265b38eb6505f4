"""`bench report`: the tables and charts of one or more runs, as terminal text, markdown or one HTML file.

    report = build_report(bench.load_results(paths), against_published=True)
    write_html(report, Path("report/report.html"))   # one self-contained file: charts as data: URIs

Everything shown comes from `case_summary` / `stage_summary` (figures from `bench.measure.stats`),
`bench.report.matching` (published figures) and `bench.report.charts`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report.charts import Chart, all_charts
from bench.report.matching import PublishedMatch, match_cases
from bench.report.summary import case_summary, stage_summary
from bench.report.tables import TextTable, case_table, match_table, render_html, render_markdown, stage_table

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console


@dataclass
class Report:
    """A report's content: the summaries, the published matches (if asked) and the charts."""

    title: str
    summary: pd.DataFrame
    stages: pd.DataFrame
    matches: list[PublishedMatch] | None
    charts: list[Chart]

    def tables(self) -> list[TextTable]:
        tables = [case_table(self.summary), stage_table(self.summary, self.stages)]
        if self.matches is not None:
            tables.insert(1, match_table(self.matches))
        return tables

    def skipped_notes(self) -> list[str]:
        return [f"chart '{c.title}' skipped: {c.skipped}" for c in self.charts if c.figure is None]


def build_report(results: pd.DataFrame, *, against_published: bool = False, charts: bool = True) -> Report:
    """Summaries, matches and (unless `charts` is False) the charts of `results`."""
    summary = case_summary(results)
    stages = stage_summary(results)
    matches = match_cases(summary) if against_published else None
    runs = list(dict.fromkeys(summary["run_id"].astype(str)))
    title = f"Benchmark report: {', '.join(runs[:3])}" + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    drawn = all_charts(results, summary, stages, matches) if charts else []
    return Report(title, summary, stages, matches, drawn)


def render_report_term(report: Report, console: Console, chart_paths: list[Path] | None = None) -> None:
    from bench.report.tables import render_term

    console.print(f"[bold]{report.title}[/bold]")
    for table in report.tables():
        render_term(table, console)
    for note in report.skipped_notes():
        console.print(note)
    for path in chart_paths or []:
        console.print(f"chart: {path}")


def write_charts(report: Report, folder: Path) -> list[Path]:
    """PNG and SVG of every drawn chart into `folder`."""
    return [path for chart in report.charts for path in chart.save(folder)]


def markdown(report: Report, chart_folder: str | None = None) -> str:
    """The report as markdown; charts linked as `<chart_folder>/<name>.png` when given."""
    *main, stages = report.tables()  # the long per-stage table goes after the charts
    parts = [f"# {report.title}", ""]
    for table in main:
        parts.append(render_markdown(table))
    if chart_folder is not None:
        parts.append("## Charts\n")
        for chart in report.charts:
            if chart.figure is not None:
                parts.append(f"![{chart.title}]({chart_folder}/{chart.name}.png)\n")
        parts += [f"- {note}" for note in report.skipped_notes()] + [""]
    parts.append(render_markdown(stages))
    return "\n".join(parts).rstrip() + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
.notes { font-size: 0.85em; color: #555; }
"""


def html_document(report: Report) -> str:
    """One self-contained HTML page: inline CSS, tables, charts as PNG data: URIs; no external fetch."""
    *main, stages = report.tables()  # the long per-stage table goes after the charts
    body = [f"<h1>{html.escape(report.title)}</h1>"]
    body += [render_html(table) for table in main]
    body.append("<h2>Charts</h2>")
    for chart in report.charts:
        if chart.figure is not None:
            body.append(f"<figure><img class='chart' alt='{html.escape(chart.title)}' src='{chart.png_data_uri()}'>"
                        f"<figcaption>{html.escape(chart.title)}</figcaption></figure>")  # fmt: skip
    notes = report.skipped_notes()
    if notes:
        body.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    body.append(render_html(stages))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<link rel='icon' href='data:,'><meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")  # fmt: skip
