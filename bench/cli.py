"""The `bench` command.

Each subcommand lives in its own module under `bench.commands` and exposes
`add_parser(subparsers)`, which registers its parser and sets `handler(args) -> int`.
Errors the user can fix (`BenchError`) print as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Sequence

import bench.commands
from bench.errors import BenchError, Interrupted, ResultsWarning

_python_show_warning = warnings.showwarning


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand module's parser attached."""
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark the Stable Diffusion XL Core ML pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(bench.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"bench.commands.{info.name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bench` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        argv = ["run"]  # `bench` alone runs the default suite
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ResultsWarning)
            warnings.showwarning = _show_warning
            return int(args.handler(args) or 0)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return error.exit_code
    except Interrupted as stop:
        print(f"bench: interrupted by {stop.name}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Warnings the user should act on, as one `bench: warning:` line each; others as Python shows them."""
    if issubclass(category, ResultsWarning):
        print(f"bench: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, *args, **kwargs)  # type: ignore[arg-type]


def _version() -> str:
    from bench import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
