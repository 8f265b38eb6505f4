"""How many threads the reference engine computes with, and why: one small record for the manifest.

The rule, in order:
1. An explicit count wins: `configure_threads(n)` (`bench run --threads N`, `bench profile
   --threads N`), else the first of `BENCH_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`.
2. Otherwise the CPUs this process may use: the size of its affinity mask, capped by its cgroup CPU
   quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the tightest along the cgroup's
   path; a fractional quota rounds down, at least 1) ...
3. ... divided among the reference-engine processes running on this machine, at least 1 each.
   Every process that loads a model registers itself (a file named by its pid in a per-user folder
   of the temp directory, removed at exit; files of dead pids are ignored and cleaned up), and the
   share is re-read before every predict, so two runs started together settle on one thread each.

Why the division: every product is split evenly over the threads and waits for the slowest, and
spinning BLAS threads make it worse; two processes with two threads each on two cores make every
product wait for a time slice (measured on this 2-core VM, issue 13: tiny fp16 UNet calls 5.4-7.1x
slower side by side instead of about 2x). With one thread each, two processes simply share the
cores.

The count goes to the engine's own kernel threads (`ops._util`), which run the elementwise blocks and
split every matrix product (`ops/gemm.py`); BLAS itself is held at one thread (it would otherwise
start its own spinning threads, see `ops/gemm.py`), and OpenMP pools threadpoolctl finds get the count.
"""

from __future__ import annotations

import atexit
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.errors import BenchError

#: Environment variables read as an explicit thread count, in order.
THREAD_ENV_VARS: tuple[str, ...] = ("BENCH_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs this process may use, and where the figure comes from."""

    affinity: int  # CPUs in the affinity mask (os.cpu_count where there is no mask)
    quota: float | None  # the cgroup CPU quota in CPUs, None without one
    quota_source: str | None  # the file that set it

    @property
    def cpus(self) -> int:
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.floor(self.quota)))


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count the engine uses and how it was chosen (stored in manifest.json)."""

    threads: int
    source: str  # "requested", an environment variable's name, or "cpus"
    requested: int | None
    affinity_cpus: int
    cgroup_quota_cpus: float | None
    cgroup_quota_file: str | None
    engine_processes: int  # reference-engine processes sharing the CPUs (1 when the count is explicit)
    pools: list[dict[str, object]] = field(default_factory=list)  # what threadpoolctl set: library, api, threads

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# -- the CPU budget --------------------------------------------------------------------------------------


def affinity_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks (macOS)
        return max(1, os.cpu_count() or 1)


def cgroup_quota(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> tuple[float | None, str | None]:
    """The tightest CPU quota on this process's cgroup path, in CPUs, and the file that set it."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None, None
    best: tuple[float | None, str | None] = (None, None)
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: the unified hierarchy (under unified/ on hybrid systems)
            candidates = [(root, path, _read_v2), (root / "unified", path, _read_v2)]
        elif "cpu" in controllers.split(","):
            candidates = [(root / name, path, _read_v1) for name in (controllers, "cpu", "cpu,cpuacct")]
        else:
            continue
        for base, cg_path, reader in candidates:
            for folder in _ancestors(base, cg_path):
                quota = reader(folder)
                if quota is not None and (best[0] is None or quota < best[0]):
                    best = (quota, str(folder))
    return best


def _ancestors(base: Path, cgroup_path: str) -> list[Path]:
    """The cgroup's folder and each parent up to the mount point (a quota anywhere above applies)."""
    parts = [p for p in cgroup_path.strip("/").split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _read_v2(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _read_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_budget() -> CpuBudget:
    quota, source = cgroup_quota()
    return CpuBudget(affinity_cpus(), quota, source)


# -- the registry of engine processes -------------------------------------------------------------------


def registry_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"sdxl-coreml-bench-engines-{uid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def engine_processes(folder: Path | None = None) -> int:
    """Live registered engine processes (this one included once registered); stale files are removed."""
    folder = folder or registry_dir()
    try:
        names = os.listdir(folder)
    except OSError:
        return 1
    live = 0
    for name in names:
        if not name.isdigit():
            continue
        if _alive(int(name)):
            live += 1
        else:
            try:
                os.unlink(folder / name)
            except OSError:
                pass
    return max(1, live)


_registered: Path | None = None


def register_process(folder: Path | None = None) -> None:
    """Mark this process as a running engine (idempotent; the mark goes at interpreter exit)."""
    global _registered
    if _registered is not None:
        return
    folder = folder or registry_dir()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        mark = folder / str(os.getpid())
        mark.touch()
    except OSError:
        return  # an unwritable temp dir only costs the sharing rule, never a run
    _registered = mark
    atexit.register(_unregister, mark)


def _unregister(mark: Path) -> None:
    try:
        mark.unlink()
    except OSError:
        pass


# -- planning and applying ------------------------------------------------------------------------------


def explicit_request(requested: int | None = None) -> tuple[int | None, str | None]:
    """The explicit thread count and where it came from, or (None, None)."""
    if requested is not None:
        if requested < 1:
            raise BenchError(f"thread count must be at least 1, got {requested}")
        return requested, "requested"
    for name in THREAD_ENV_VARS:
        text = os.environ.get(name, "").strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise BenchError(f"environment variable {name}={text!r}: expected a positive integer thread count")
        return int(text), name
    return None, None


def plan_threads(requested: int | None = None, *, processes: int | None = None) -> ThreadPlan:
    """The plan the rule gives for this process now, without applying it."""
    budget = cpu_budget()
    count, source = explicit_request(requested)
    if count is None:
        sharing = processes if processes is not None else engine_processes()
        count, source = max(1, budget.cpus // sharing), "cpus"
    else:
        sharing = 1
    return ThreadPlan(count, source, requested, budget.affinity, budget.quota, budget.quota_source, sharing)


_requested: int | None = None
_current: ThreadPlan | None = None


def configure_threads(requested: int | None = None) -> ThreadPlan:
    """Choose the engine's thread count by the rule above, apply it to BLAS and the kernel pool,
    and register this process as a running engine. `requested` (e.g. `--threads`) overrides."""
    global _requested
    _requested = requested
    register_process()
    return _apply(plan_threads(requested))


def refresh_threads() -> ThreadPlan:
    """Re-apply the rule before a predict: the share of the CPUs changes as engine processes come and go."""
    if _current is None:
        return configure_threads(_requested)
    plan = plan_threads(_requested)
    if plan.threads == _current.threads and plan.engine_processes == _current.engine_processes:
        return _current
    return _apply(plan)


def current_plan() -> ThreadPlan | None:
    return _current


def _apply(plan: ThreadPlan) -> ThreadPlan:
    global _current
    from bench.engines.reference.ops import _util

    pools: list[dict[str, object]] = []
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # threadpoolctl is a soft dependency: without it BLAS keeps its own count
        pass
    else:
        # BLAS runs single-threaded under the kernel threads, which split every product (ops/gemm.py)
        threadpool_limits(limits={"blas": 1, "openmp": plan.threads})
        pools = [
            {"library": info.get("internal_api"), "api": info.get("user_api"), "threads": info.get("num_threads")}
            for info in threadpool_info()
        ]
    _util.set_num_threads(plan.threads)
    _current = ThreadPlan(**{**asdict(plan), "pools": pools})
    return _current
