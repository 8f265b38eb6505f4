"""`bench report RUN...`: per-case tables, stage statistics and charts of one or more runs.

Formats: `term` (rich tables; charts too when --out is given), `md` (report.md and charts/*.png|svg
in --out, or markdown on stdout without --out), `html` (one self-contained report.html in --out).
Exit code 2 for bad input (no results found, another schema, an empty run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.errors import ResultsError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="tables and charts of runs, optionally against published figures",
        description="Report one or more runs (run folders, results.csv files, a results tree or a glob): per case "
        "end-to-end latency, iter/s, every stage's median with IQR and p90, loads, peak memory, PSNR, status and "
        "validity; charts as PNG and SVG.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder, results.csv, results tree or glob")
    parser.add_argument("--against", choices=("published",), help="put each case beside the matching published figure")
    parser.add_argument("--format", choices=("term", "md", "html"), default="term", help="output format (default: term)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for report.md / report.html and charts/ (html default: report/)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.report.document import build_report, html_document, markdown, render_report_term, write_charts
    from bench.store import load_results

    # Torn, unparsable or non-finite rows are left out by load_results with a counted warning.
    results = load_results(args.runs if len(args.runs) > 1 else args.runs[0])
    if results.empty:
        raise ResultsError(f"{', '.join(args.runs)}: no result rows (an empty run)")
    want_charts = args.format == "html" or args.out is not None
    report = build_report(results, against_published=args.against == "published", charts=want_charts)
    console = Console()
    if not console.is_terminal:  # piped or in CI: wide enough that tables do not fold
        console = Console(width=200)
    if args.format == "term":
        paths = write_charts(report, args.out / "charts") if args.out is not None else None
        render_report_term(report, console, paths)
        return 0
    if args.format == "md":
        if args.out is None:
            sys.stdout.write(markdown(report))
            return 0
        write_charts(report, args.out / "charts")
        target = args.out / "report.md"
        _write(target, markdown(report, chart_folder="charts"))
    else:
        out = args.out or Path("report")
        target = out / "report.html"
        _write(target, html_document(report))
        write_charts(report, out / "charts")
    console.print(f"report: {target}")
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror or error}") from None
