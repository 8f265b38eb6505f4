"""`bench compare BASELINE CANDIDATE`: the regression gate between two sets of runs.

Exit codes: 0 no regression, 1 a regression, 2 bad input (unreadable or empty results, a glob
that matches nothing, runs from different devices or engines without --allow-mixed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.measure.stats import BOOTSTRAP_RESAMPLES, SIGNIFICANCE_ALPHA


def _threshold(text: str) -> str:
    from bench.report.compare import parse_threshold

    try:
        parse_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must lie strictly between 0 and 1")
    return value


def _resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: use at least 100 resamples")
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two runs (or sets of runs) and flag regressions",
        description=(
            "Compare CANDIDATE against BASELINE per case, stage and metric (latency, peak memory): ratio of "
            "medians, Mann-Whitney U test, bootstrap interval of the ratio. A regression exceeds its threshold "
            "and is significant. Exit 0 clean, 1 regression, 2 bad input."
        ),
    )
    parser.add_argument("baseline", metavar="BASELINE", help="run folder, results.csv or glob (runs are pooled)")
    parser.add_argument("candidate", metavar="CANDIDATE", help="run folder, results.csv or glob (runs are pooled)")
    parser.add_argument(
        "--threshold", action="append", default=[], type=_threshold, metavar="[KEY=]N%",
        help="relative threshold: N%% for everything (default 5%%), or per stage group (encoders, unet, vae, load, "
        "end_to_end), per metric (latency, peak_rss, peak_footprint) or GROUP.METRIC; repeatable, most specific wins",
    )  # fmt: skip
    parser.add_argument("--alpha", type=_fraction, default=SIGNIFICANCE_ALPHA,
                        help=f"significance level of the Mann-Whitney U test (default {SIGNIFICANCE_ALPHA}, asv's)")  # fmt: skip
    parser.add_argument("--confidence", type=_fraction, default=0.99, help="bootstrap interval level (default 0.99)")
    parser.add_argument("--resamples", type=_resamples, default=BOOTSTRAP_RESAMPLES,
                        help=f"bootstrap resamples (default {BOOTSTRAP_RESAMPLES})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    parser.add_argument("--allow-mixed", action="store_true", help="compare runs from different devices or engines")
    parser.add_argument("--include-invalid", action="store_true", help="gate cases marked invalid too")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of a table")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML (a test case per case and stage)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the markdown summary to FILE")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from bench.report.compare import Thresholds, compare_results, junit_xml, load_side, markdown_summary

    baseline, candidate = load_side(args.baseline), load_side(args.candidate)
    result = compare_results(
        baseline, candidate, thresholds=Thresholds.parse(args.threshold), alpha=args.alpha,
        confidence=args.confidence, resamples=args.resamples, seed=args.seed,
        allow_mixed=args.allow_mixed, include_invalid=args.include_invalid,
    )  # fmt: skip
    for warning in result.warnings:
        print(f"bench: warning: {warning}", file=sys.stderr)
    markdown = markdown_summary(result)
    if args.markdown:
        _write(args.markdown, markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        _write(Path(step_summary), markdown, append=True)
    if args.junit:
        _write(args.junit, junit_xml(result))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _render(result)
    return result.exit_code


def _write(path: Path, text: str, append: bool = False) -> None:
    from bench.errors import ResultsError

    try:
        with open(path, "a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror or error}") from None


def _render(result: Any) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench.report.compare import format_interval, format_p, format_ratio, format_value

    console = Console()
    shown = [c for c in result.comparisons if c.verdict != "unchanged"]
    table = Table(title=f"{result.candidate} against {result.baseline}", title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    for name in ("case", "stage", "metric", "baseline", "candidate", "ratio", f"{result.confidence:.0%} CI", "p", "n",
                 "threshold", "verdict"):  # fmt: skip
        table.add_column(name, justify="right" if name not in ("case", "stage", "metric", "verdict") else "left")
    colours = {"regression": "red", "improvement": "green", "too_few_samples": "yellow", "failed": "magenta"}
    for c in shown:
        colour = colours.get(c.verdict, "default")
        verdict = c.verdict.replace("_", " ") + (f" ({c.note})" if c.note else "")
        table.add_row(escape(c.case), escape(c.label), c.metric, format_value(c.baseline_median, c.unit),
                      format_value(c.candidate_median, c.unit), format_ratio(c), format_interval(c), format_p(c),
                      f"{c.baseline_n}/{c.candidate_n}", f"{c.threshold:.0%}",
                      f"[{colour}]{escape(verdict)}[/{colour}]")  # fmt: skip
    if shown:
        console.print(table)
    for title, refs in (("only in the baseline", result.only_baseline), ("only in the candidate", result.only_candidate)):
        for ref in refs:
            console.print(f"  {escape(ref.case)} ({ref.case_id}): {title}")
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(result.counts().items()))
    regressions = len(result.regressions)
    status = f"[red]{regressions} regression(s)[/red]" if regressions else "[green]no regression[/green]"
    console.print(f"{status} in {len(result.comparisons)} comparisons ({counts or 'none'})")
