"""`bench export RUN --format pytest-benchmark|csv|parquet [--table raw|stages|cases] [--out FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export results as pytest-benchmark JSON, CSV or Parquet",
        description=(
            "Export RUN (a run folder, a results.csv or a glob): pytest-benchmark JSON (one run; one benchmark per "
            "case and stage, readable by `pytest-benchmark compare`), or a table as CSV or Parquet."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run folder, results.csv or glob")
    parser.add_argument("--format", required=True, choices=("pytest-benchmark", "csv", "parquet"), dest="fmt")
    parser.add_argument("--table", choices=("raw", "stages", "cases"), default="raw",
                        help="csv / parquet: the rows (default), per-stage statistics or per-case figures")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="FILE", help="output file (default: standard output; parquet needs it)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from bench.errors import ResultsError
    from bench.report.export import pytest_benchmark_json, read_manifest, results_csv_text, table, write_parquet
    from bench.store import load_results

    if args.fmt == "parquet" and args.out is None:
        raise ResultsError("--format parquet writes binary: name the file with --out FILE")
    results = load_results(args.run)
    if results.empty:
        raise ResultsError(f"{args.run}: no measurements (an empty run)")
    if args.fmt == "pytest-benchmark":
        document, left_out = pytest_benchmark_json(results, read_manifest(args.run))
        if left_out:
            print(f"bench: warning: {left_out} case(s) left out: they did not finish ok", file=sys.stderr)
        _emit(json.dumps(document, indent=2, allow_nan=False) + "\n", args.out)
        return 0
    frame = table(results, args.table)
    if args.fmt == "parquet":
        write_parquet(frame, args.out)
        return 0
    _emit(results_csv_text(frame) if args.table == "raw" else frame.to_csv(index=False, lineterminator="\n"), args.out)
    return 0


def _emit(text: str, out: Path | None) -> None:
    from bench.errors import ResultsError

    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"cannot write {out}: {error.strerror or error}") from None
