"""`bench merge`: combine the shard runs of one suite (`bench run --shard K/N`) into one run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="combine shard runs (bench run --shard K/N) into one run",
        description="Check that the run folders are the shards 1..N of one suite and selection, with no case "
        "twice and every case finished, and write them as one run folder in OUTPUT.",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="the shard run folders")
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="results folder (default: results/)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from bench.fleet import merge_runs

    merged = merge_runs(args.runs, args.output)
    print(f"merged {len(args.runs)} shards -> {merged}")
    return 0
