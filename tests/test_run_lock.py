"""One writer per run folder: a second resume of a locked run is refused; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import run_bench

from bench.errors import RunLockedError
from bench.run_lock import LOCK_FILE, RunLock

SUITE = """
[suite]
name = "locked"
[defaults]
steps = 1
warmup = 0
repeats = 1
engine = "reference"
compute_unit = "REFERENCE"
[matrix]
model = ["fake-ok"]
"""



def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLockedError, match=rf"PID {os.getpid()} on host {platform.node()}"):
        RunLock(tmp_path).acquire()
    first.release()
    RunLock(tmp_path).acquire().release()  # free again
    assert (tmp_path / LOCK_FILE).read_bytes() == b""  # a clean release names no holder


def test_dead_holder_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    pid = _dead_pid()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": platform.node(), "since": "then"}))
    lock = RunLock(tmp_path).acquire()
    assert f"PID {pid} on {platform.node()}) is no longer running" in lock.describe_takeover()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


def test_resume_of_a_locked_run_exits_2_naming_the_holder(tmp_path: Path) -> None:
    (tmp_path / "locked.toml").write_text(SUITE)
    done = run_bench(tmp_path, "run", "--suite", "locked.toml", "--no-progress", "--plugin", "fake_executor:PLUGIN",
                  "-o", "results")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    before = (run_dir / "results.csv").read_bytes()

    holder = RunLock(run_dir).acquire()  # as a concurrent `bench run --resume` would hold it
    refused = run_bench(tmp_path, "run", "--resume", str(run_dir), "--no-progress")
    holder.release()
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]  # one line
    assert f"PID {os.getpid()}" in refused.stderr and platform.node() in refused.stderr
    assert (run_dir / "results.csv").read_bytes() == before

    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": platform.node(), "since": "x"}))
    resumed = run_bench(tmp_path, "run", "--resume", str(run_dir), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "taking over the lock" in resumed.stdout + resumed.stderr
