"""`bench published`: the published device figures the package ships, with source and date."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "published",
        help="print the published device figures (Apple's SDXL and SD 1.x/2.x tables)",
        description="Published end-to-end latency and iter/s per device and configuration, with source and date. "
        "Historical, superseded and repeated rows only with --all (and marked).",
    )
    parser.add_argument("--model", metavar="M", help="only models whose name contains M (e.g. sdxl, 'sd-2.1', 'SD 1.4')")
    parser.add_argument("--device", metavar="D", help="only devices whose name contains D, or with chip D (e.g. 'iPhone 15', M2)")
    parser.add_argument("--metric", choices=("end_to_end", "iter_per_s"), help="show only this figure")
    parser.add_argument("--all", action="store_true", help="also historical, superseded and repeated rows")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.errors import PublishedNumbersError
    from bench.report.published import device_table
    from bench.report.tables import published_tables, render_term

    frame = device_table(model=args.model, device=args.device, include_old=args.all)
    if args.metric is not None:
        column = "end_to_end_s" if args.metric == "end_to_end" else "iter_per_s"
        frame = frame[frame[column].notna()]
    if frame.empty:
        raise PublishedNumbersError(
            "no published figure matches" + "".join(f" {flag} {value!r}" for flag, value in
                                                     (("--model", args.model), ("--device", args.device),
                                                      ("--metric", args.metric)) if value)  # fmt: skip
            + ("" if args.all else " (historical rows need --all)")
        )
    console = Console()
    if not console.is_terminal:  # piped or in CI: wide enough that tables do not fold
        console = Console(width=200)
    for table in published_tables(frame, args.metric):
        render_term(table, console)
    return 0
