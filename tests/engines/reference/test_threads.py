"""The engine's thread rule: explicit counts, the CPU budget (affinity, cgroup quota), the share among
running engine processes, and what configuring applies to BLAS and the kernel pool."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.engines.reference import threads
from bench.engines.reference.ops import _util
from bench.errors import BenchError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "registry_dir", lambda: tmp_path / "engines")
    monkeypatch.setattr(threads, "_registered", None)
    yield
    monkeypatch.undo()
    threads.configure_threads(None)  # leave the process as the rule sets it


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_on_the_path(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "0::/user.slice/job\n")
    root = tmp_path / "fs"
    write(root / "user.slice" / "job" / "cpu.max", "max 100000\n")
    write(root / "user.slice" / "cpu.max", "150000 100000\n")
    write(root / "cpu.max", "400000 100000\n")
    quota, source = threads.cgroup_quota(proc, root)
    assert quota == 1.5 and source.endswith("user.slice")


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "4:memory:/x\n1:cpu,cpuacct:/docker/abc\n0::/\n")
    root = tmp_path / "fs"
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_quota(proc, root)[0] == 0.5
    assert threads.cgroup_quota(tmp_path / "absent", root) == (None, None)


def test_budget_takes_the_quota_rounded_down_but_at_least_one():
    assert threads.CpuBudget(8, None, None).cpus == 8
    assert threads.CpuBudget(8, 2.5, "f").cpus == 2
    assert threads.CpuBudget(8, 0.5, "f").cpus == 1
    assert threads.CpuBudget(2, 16.0, "f").cpus == 2


def test_explicit_counts_win_in_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.explicit_request() == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("BENCH_NUM_THREADS", "1")
    assert threads.explicit_request() == (1, "BENCH_NUM_THREADS")
    assert threads.explicit_request(2) == (2, "requested")
    plan = threads.plan_threads(5, processes=4)
    assert (plan.threads, plan.source, plan.engine_processes) == (5, "requested", 1)


def test_bad_counts_are_one_line_errors(monkeypatch):
    with pytest.raises(BenchError, match="at least 1, got 0"):
        threads.explicit_request(0)
    monkeypatch.setenv("BENCH_NUM_THREADS", "two")
    with pytest.raises(BenchError, match=r"BENCH_NUM_THREADS='two'"):
        threads.plan_threads()


def test_cpus_are_shared_among_engine_processes(monkeypatch):
    monkeypatch.setattr(threads, "cpu_budget", lambda: threads.CpuBudget(2, None, None))
    assert threads.plan_threads(processes=1).threads == 2
    assert threads.plan_threads(processes=2).threads == 1
    assert threads.plan_threads(processes=5).threads == 1
    monkeypatch.setattr(threads, "cpu_budget", lambda: threads.CpuBudget(16, 8.0, "cpu.max"))
    plan = threads.plan_threads(processes=3)
    assert (plan.threads, plan.source, plan.cgroup_quota_cpus) == (2, "cpus", 8.0)


def test_registry_counts_live_processes_and_drops_dead_ones(tmp_path):
    folder = tmp_path / "reg"
    folder.mkdir()
    (folder / str(os.getpid())).touch()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / str(dead.pid)).touch()
    (folder / "not-a-pid").touch()
    assert threads.engine_processes(folder) == 1
    assert not (folder / str(dead.pid)).exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / str(sleeper.pid)).touch()
        assert threads.engine_processes(folder) == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    assert threads.engine_processes(folder) == 1


def test_configure_gives_the_kernel_threads_the_count_and_holds_blas_at_one():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    plan = threads.configure_threads(2)
    assert plan.threads == 2 and _util.num_threads() == 2
    blas = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert blas and set(blas) == {1}  # the kernel threads split products; BLAS never starts its own
    assert plan.pools and all(pool["threads"] == 1 for pool in plan.pools if pool["api"] == "blas")
    plan = threads.configure_threads(1)
    assert threads.current_plan() == plan and plan.to_dict()["source"] == "requested"
    assert (threads.registry_dir() / str(os.getpid())).exists()  # this process counts as an engine now
