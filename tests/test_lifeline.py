"""No orphans: signals to `bench run` stop the worker's whole group, record the case as interrupted,
mark the manifest and exit 128 + signal; a SIGKILLed runner's worker stops itself."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from cli_process import bench_command, bench_env, run_bench

from bench.store import RESULTS_FILE, load_results

SUITE = """
[suite]
name = "hang"
[defaults]
steps = 3
warmup = 1
repeats = 1
timeout = 120
engine = "reference"
compute_unit = "REFERENCE"
[matrix]
model = ["fake-ok", "fake-hang", "fake-ok-2"]
"""


def _start_run(tmp_path: Path, timeout: float = 120) -> subprocess.Popen[bytes]:
    (tmp_path / "hang.toml").write_text(SUITE.replace("timeout = 120", f"timeout = {timeout}"))
    command = bench_command("run", "--suite", str(tmp_path / "hang.toml"), "--no-progress",
                            "--plugin", "fake_executor:PLUGIN", "-o", str(tmp_path / "results"))  # fmt: skip
    return subprocess.Popen(command, cwd=tmp_path, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _blocked_worker(run: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Wait until the fake-hang case's worker is blocked in its UNet; return the run's descendants.

    The worker's stage board (a file it keeps open) says `unet<TAB>1` while it is blocked there;
    a case passing through that step holds it for milliseconds, the hanging one for good.
    """
    runner = psutil.Process(run.pid)
    deadline = time.monotonic() + 60
    since: float | None = None
    while time.monotonic() < deadline:
        boards = []
        for child in runner.children(recursive=True):
            try:
                boards += [f.path for f in child.open_files() if f.path.endswith(".board")]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if any(_board_says_unet(board) for board in boards):
            since = since or time.monotonic()
            if time.monotonic() - since > 0.5:
                return runner.children(recursive=True)
        else:
            since = None
        time.sleep(0.05)
    raise AssertionError("the fake-hang worker never reached its UNet")


def _board_says_unet(path: str) -> bool:
    try:
        return Path(path).read_bytes().startswith(b"unet\t1")
    except OSError:
        return False


def _gone_within(processes: list[psutil.Process], seconds: float) -> float:
    """Seconds until every process has exited; fails after `seconds`."""
    start = time.monotonic()
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    assert not alive, f"still running after {seconds} s: {[(p.pid, p.cmdline()) for p in alive]}"
    return time.monotonic() - start


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_the_worker_and_records_the_interruption(tmp_path: Path, sig: signal.Signals) -> None:
    run = _start_run(tmp_path)
    try:
        descendants = _blocked_worker(run)
        assert descendants, "the worker (and its watchdog) should be running"
        run.send_signal(sig)
        assert run.wait(timeout=30) == 128 + sig
    finally:
        if run.poll() is None:
            run.kill()
    _gone_within(descendants, 5)
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["signal"] == sig.name
    closing = load_results(run_dir).query("stage == 'outcome'").set_index("model", drop=False)
    assert closing.loc["fake-ok", "status"] == "ok"
    assert closing.loc["fake-hang", "status"] == "interrupted"
    assert closing.loc["fake-hang", "error"].startswith(f"interrupted by {sig.name} during unet step 1")
    assert "fake-ok-2" not in set(closing["model"])  # never started
    assert not list(run_dir.glob(".stage-*.board"))


def test_sigkilled_runner_leaves_no_worker(tmp_path: Path) -> None:
    run = _start_run(tmp_path)
    try:
        descendants = _blocked_worker(run)
        run.kill()
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
    took = _gone_within(descendants, 5)
    assert took < 2.0, f"the worker outlived its runner by {took:.1f} s"


def test_resume_reruns_the_interrupted_case(tmp_path: Path) -> None:
    run = _start_run(tmp_path, timeout=10)
    try:
        _blocked_worker(run)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 143
    finally:
        if run.poll() is None:
            run.kill()
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    done = run_bench(tmp_path, "run", "--resume", str(run_dir), "--no-progress", timeout=120)
    assert done.returncode == 1, done.stderr  # fake-hang now runs to its timeout
    closing = load_results(run_dir / RESULTS_FILE).query("stage == 'outcome'")
    assert sorted(closing["model"].astype(str)) == ["fake-hang", "fake-ok", "fake-ok-2"]
    assert "interrupted" not in set(closing["status"].astype(str))  # the interrupted attempt was dropped
    assert json.loads((run_dir / "manifest.json").read_text())["interrupted"] is False
