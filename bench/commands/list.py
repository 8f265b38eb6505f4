"""`bench list`: the suites and the cases each expands to on this machine."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.suite.case import Case


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list suites and their cases",
        description="List suites (from ./suites and the bench checkout) and the cases they expand to here.",
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE", help="suite names or .toml paths (default: all)")
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="only cases whose label matches")
    parser.add_argument("--brief", action="store_true", help="suite names and case counts only")
    parser.set_defaults(handler=handle)


def render_cases(console: Any, name: str, path: Path, description: str, cases: Sequence[Case]) -> None:
    """A table of cases: id, label, repeats, timeout, and notes (collapsed units, skip reasons)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{name}: {description}" if description else name, title_justify="left",
                  caption=str(path), caption_justify="left", header_style="bold")  # fmt: skip
    table.add_column("#", justify="right")
    table.add_column("case id")
    table.add_column("case", overflow="fold")
    table.add_column("warmup+repeats", justify="right")
    table.add_column("timeout", justify="right")
    table.add_column("note", overflow="fold")
    for index, case in enumerate(cases, 1):
        notes = []
        if case.skip_reason:
            notes.append(f"[yellow]skipped: {escape(case.skip_reason)}[/yellow]")
        if case.requested_compute_units:
            notes.append(f"compute unit collapsed from {', '.join(case.requested_compute_units)}")
        if case.quality:
            notes.append("+ UNet PSNR")
        table.add_row(str(index), case.case_id, escape(case.label), f"{case.warmup}+{case.repeats}",
                      f"{case.timeout:g}s", "; ".join(notes))  # fmt: skip
    console.print(table)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.session import Selection, plan_run
    from bench.suite import available_suites

    console = Console()
    names = args.suites or list(available_suites())
    if not names:
        console.print("no suites found (looked for suites/*.toml)")
        return 0
    for name in names:
        plan = plan_run(Selection(suite=name, keyword=args.keyword), allow_empty=True)
        if args.brief:
            skipped = sum(1 for case in plan.cases if case.skip_reason)
            count = f"{len(plan.cases)} cases" + (f" ({skipped} skipped here)" if skipped else "")
            console.print(f"{plan.suite_name:13} {count:26} {plan.suite_description}", soft_wrap=True)
        else:
            render_cases(console, plan.suite_name, plan.suite_path, plan.suite_description, plan.cases)
    return 0
