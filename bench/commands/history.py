"""`bench history RESULTS_DIR`: per-run medians over time and the lasting changes in them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="series of per-run medians across runs, with change points",
        description=(
            "One series per case, stage and metric across the runs under RESULTS_DIR (oldest first); lasting "
            "changes found with ruptures (PELT), lone outlier nights ignored."
        ),
    )
    parser.add_argument("results", metavar="RESULTS_DIR", help="results tree, run folders or a glob")
    parser.add_argument("--metric", action="append", choices=("latency", "peak_rss", "peak_footprint"),
                        help="metrics to follow (repeatable; default latency and peak_rss)")  # fmt: skip
    parser.add_argument("--stage", action="append", metavar="STAGE",
                        help="stages to follow: a name (unet) or a prefix ending in / (load/); repeatable")  # fmt: skip
    parser.add_argument("--include-invalid", action="store_true", help="keep runs where a case was marked invalid")
    parser.add_argument("--charts", type=Path, metavar="DIR", help="write a PNG per series, change points marked")
    parser.add_argument("--json", action="store_true", help="print the change points as a JSON list")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from bench.report.history import (
        build_series,
        chart_file_name,
        find_changes,
        plot_series,
        run_start_times,
    )
    from bench.store import load_results

    results = load_results(args.results)
    if results.empty:
        from bench.errors import ResultsError

        raise ResultsError(f"{args.results}: no measurements (an empty run)")
    starts = run_start_times(args.results, results)
    found = build_series(results, starts, metrics=args.metric or ("latency", "peak_rss"), stages=args.stage,
                         include_invalid=args.include_invalid)  # fmt: skip
    if found.left_out:
        print(f"bench: warning: {found.left_out} run-case point(s) left out: the case failed or was invalid in that run",
              file=sys.stderr)  # fmt: skip
    if found.non_finite:
        print(f"bench: warning: {found.non_finite} non-finite value(s) left out of the per-run medians", file=sys.stderr)
    changes_by_series = [(series, find_changes(series)) for series in found.series]
    if args.charts:
        for series, changes in changes_by_series:
            plot_series(series, changes, args.charts / chart_file_name(series))
    changes = [change for _, series_changes in changes_by_series for change in series_changes]
    if args.json:
        print(json.dumps([change.to_json() for change in changes], indent=2))
        return 0
    _render(found.series, changes, len(starts), args.charts)
    return 0


def _render(series: list[Any], changes: list[Any], runs: int, charts: Path | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench.report.compare import format_value

    console = Console()
    console.print(f"{len(series)} series over {runs} run(s); {len(changes)} change point(s)")
    if changes:
        table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("case", "stage", "metric", "first run after", "before", "after", "ratio"):
            table.add_column(name, justify="right" if name in ("before", "after", "ratio") else "left")
        for change in changes:
            colour = "red" if change.direction == "up" else "green"
            stage = f"{change.stage} (cold)" if change.phase == "cold" else change.stage
            table.add_row(escape(change.case), escape(stage), change.metric, change.run_id,
                          format_value(change.median_before, change.unit), format_value(change.median_after, change.unit),
                          f"[{colour}]{change.ratio:.3f}[/{colour}]")  # fmt: skip
        console.print(table)
    if charts:
        console.print(f"charts: {charts}/")
