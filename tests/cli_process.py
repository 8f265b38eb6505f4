"""`bench` in a real child process, with the tests' fake plugin importable (tests/ on its path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def bench_env() -> dict[str, str]:
    """The environment for a child `bench`: this one, with tests/ first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def run_bench(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `bench ARGS` to its end in `cwd`; its output captured as text."""
    return subprocess.run(bench_command(*args), cwd=cwd, env=bench_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
