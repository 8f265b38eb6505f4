"""`bench run`: run a suite (default `smoke`) and print a per-case summary.

Exit code 0 when every case is ok or skipped, 1 when a case failed or timed out, 2 for bad input
(unknown suite, malformed suite file, bad -k, unwritable results folder, absent model).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import SuiteError
from bench.plugin import DEFAULT_PLUGIN
from bench.suite.loader import DEFAULT_SUITE


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a benchmark suite (default: smoke)",
        description="Run a benchmark suite: each case in its own worker process; results go to "
        "OUTPUT/<run-id>/results.csv and manifest.json.",
    )
    parser.add_argument("-s", "--suite", default=None, help=f"suite name or .toml path (default: {DEFAULT_SUITE})")
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="only cases whose label matches, e.g. 'fp16 and not original'")
    parser.add_argument("--shard", metavar="I/N", help="run the I-th of N disjoint slices of the cases")
    parser.add_argument("--shard-costs", metavar="RESULTS",
                        help="balance shards by the case wall times in these earlier results (give every shard the same)")
    parser.add_argument("--dry-run", action="store_true", help="print the cases and exit without running")
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="results folder (default: results/)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish a killed run: skip its completed cases")
    parser.add_argument("--engine", choices=("auto", "coreml", "reference"), help="override the suite's engine")
    parser.add_argument("--repeats", type=_case_field("repeats"), help="override measured repeats")
    parser.add_argument("--warmup", type=_case_field("warmup"), help="override warm-up repeats")
    parser.add_argument("--timeout", type=_case_field("timeout"), help="override the per-case timeout (seconds)")
    parser.add_argument("--device", metavar="UDID|NAME",
                        help="run every Core ML model on this connected iPhone / iPad (see `bench devices`; macOS only)")
    parser.add_argument("--threads", type=_thread_count, metavar="N",
                        help="threads per worker for the reference engine (default: the CPUs allowed, shared among running engines)")
    parser.add_argument("--no-progress", action="store_true", help="no live display; one line per case")
    parser.add_argument("--plugin", default=None, help=argparse.SUPPRESS)  # tests plug in fake pipelines
    parser.set_defaults(handler=handle)


def _thread_count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads >= 1, got {text!r}")
    return int(text)


def _case_field(name: str) -> Callable[[str], Any]:
    """An argparse type checking an override like the suite field `name` (same limits, no nan)."""
    from bench.suite.fields import FIELDS

    spec = FIELDS[name]

    def parse(text: str) -> Any:
        try:
            number = float(text) if name == "timeout" else int(text)
            return spec.check(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {spec.allowed}, got {text}") from None

    return parse


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench import session as sessions
    from bench.report.progress import RichProgress
    from bench.report.published import render_published_comparison
    from bench.report.summary import case_summary, render_summary
    from bench.store import load_results

    console = Console()
    if not console.is_terminal:  # piped or in CI: wide enough that the summary keeps every column
        console.width = max(console.width, 120)
    progress = RichProgress(console, live=False if args.no_progress else None)
    if args.threads is not None:  # workers inherit the environment; the engine reads it (engines/reference/threads.py)
        os.environ["BENCH_NUM_THREADS"] = str(args.threads)
    if args.resume is not None:
        if args.dry_run:
            raise SuiteError("--dry-run cannot be combined with --resume")
        selecting = [flag for flag, value in (("--suite", args.suite), ("-k", args.keyword), ("--shard", args.shard),
                     ("--shard-costs", args.shard_costs), ("--engine", args.engine), ("--repeats", args.repeats), ("--warmup", args.warmup),
                     ("--timeout", args.timeout), ("--device", args.device)) if value is not None]  # fmt: skip
        if selecting:
            raise SuiteError(f"--resume reruns the cases stored in {args.resume}; drop {', '.join(selecting)}")
        session = sessions.resume_run(args.resume, plugin=args.plugin, status=progress.status)
        plan = session.plan
    else:
        selection = sessions.Selection(
            suite=args.suite or DEFAULT_SUITE, keyword=args.keyword, shard=args.shard, shard_costs=args.shard_costs,
            engine=args.engine, repeats=args.repeats, warmup=args.warmup, timeout=args.timeout, device=args.device,
        )  # fmt: skip
        plan = sessions.plan_run(selection)
        if args.dry_run:
            from bench.commands.list import render_cases

            render_cases(console, plan.suite_name, plan.suite_path, plan.suite_description, plan.cases)
            return 0
        session = sessions.start_run(
            plan, args.output, plugin=args.plugin or DEFAULT_PLUGIN, status=progress.status
        )
    console.print(f"run {session.run_id}: suite {plan.suite_name}, {len(plan.cases)} cases -> {session.run_dir}")
    try:
        outcomes = sessions.execute(session, progress=progress)
    except KeyboardInterrupt:
        console.print(f"interrupted; finished cases are saved. Resume with: bench run --resume {session.run_dir}")
        raise
    summary = case_summary(load_results(session.results_path))
    render_summary(summary, console, title=f"{plan.suite_name} · {session.run_id}")
    render_published_comparison(summary, console)
    console.print(f"results: {session.results_path}")
    failed = [o for o in outcomes if o.status in ("error", "timeout")]
    return 1 if failed else 0
