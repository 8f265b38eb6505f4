"""Peak memory per span: a sampling thread plus the process high-water mark.

A thread reads RSS and, on macOS, phys_footprint every `interval` and raises the peak of the
innermost open span; when a span closes, its peak is carried into its parent, so nested spans
each get their own peak. Because a short spike can fall between two samples, closing a span also
checks the kernel's high-water marks (`ru_maxrss`, and the lifetime maximum footprint on macOS):
if the process reached a new lifetime peak while the span was open, that peak happened inside the
span and becomes its peak.
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from collections.abc import Callable

import psutil

from bench.measure.darwin import FootprintReader, footprint_reader

#: Seconds between samples. The issue asks for at least every 10 ms and under 2 % of one core.
#: On the 2-core VM this was measured on, a wake-up costs ~120 us of CPU (mostly the sleep itself),
#: so 10 ms (~1.2 %) keeps a margin that 5 ms (~2.4 %) does not (tests/benchmarks/test_measure_overhead.py).
DEFAULT_INTERVAL = 0.010
# ru_maxrss is KiB on Linux and bytes on macOS (coreml-facts.md section 5).
_MAXRSS_SCALE = 1 if platform.system() == "Darwin" else 1024
#: A span-edge reading this recent (ns) is reused by the next span opening (see MemorySampler.open).
REUSE_NS = 50_000
_perf_counter_ns = time.perf_counter_ns
_getrusage = resource.getrusage
_RUSAGE_SELF = resource.RUSAGE_SELF


def max_rss_bytes() -> int:
    """The process's lifetime peak RSS in bytes (getrusage ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_SCALE


def _statm_readers() -> tuple[Callable[[], int], Callable[[], tuple[int, None, int, None]]]:
    """RSS from /proc/self/statm through a kept-open descriptor, alone and with ru_maxrss.

    psutil.Process().memory_info() parses this same file but costs ~30 us a call (file open,
    namedtuple); spans read memory at both edges and must stay under 20 us, and the sampler under
    2 % of a core. Closures with local names keep the per-call Python overhead minimal.
    """
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    pread, getrusage, self_, scale = os.pread, resource.getrusage, resource.RUSAGE_SELF, _MAXRSS_SCALE

    def rss() -> int:
        return int(pread(fd, 128, 0).split()[1]) * page

    def snapshot() -> tuple[int, None, int, None]:
        return int(pread(fd, 128, 0).split()[1]) * page, None, getrusage(self_).ru_maxrss * scale, None

    return rss, snapshot


class MemoryReader:
    """Current RSS and, where the OS has it, phys_footprint of this process."""

    def __init__(self) -> None:
        footprint, self.footprint_absent_reason = footprint_reader()
        self._footprint: FootprintReader | None = footprint
        if footprint is None:
            try:
                self._rss, self.snapshot = _statm_readers()  # type: ignore[method-assign]
                self.rss_source = "/proc/self/statm"
            except OSError:
                process = psutil.Process()
                self._rss = lambda: process.memory_info().rss
                self.rss_source = "psutil"
        else:
            self.rss_source = "proc_pid_rusage ri_resident_size"

    @property
    def has_footprint(self) -> bool:
        return self._footprint is not None

    def read(self) -> tuple[int, int | None]:
        """(rss, phys_footprint or None) in bytes."""
        if self._footprint is None:
            return self._rss(), None
        resident, footprint, _ = self._footprint.read()
        return resident, footprint

    def high_water(self) -> tuple[int, int | None]:
        """(lifetime max RSS, lifetime max phys_footprint or None) in bytes."""
        return max_rss_bytes(), (self._footprint.read()[2] if self._footprint is not None else None)

    def snapshot(self) -> tuple[int, int | None, int, int | None]:
        """(rss, footprint, lifetime max rss, lifetime max footprint): one call at span edges."""
        if self._footprint is None:
            return self._rss(), None, _getrusage(_RUSAGE_SELF).ru_maxrss * _MAXRSS_SCALE, None
        resident, footprint, lifetime_max = self._footprint.read()
        return resident, footprint, _getrusage(_RUSAGE_SELF).ru_maxrss * _MAXRSS_SCALE, lifetime_max


class PeakCell:
    """The running peak of one open span (a slotted class: spans are on the hot path)."""

    __slots__ = ("rss", "footprint", "hwm_rss", "hwm_footprint")

    def __init__(self, rss: int, footprint: int | None, hwm_rss: int, hwm_footprint: int | None) -> None:
        self.rss = rss
        self.footprint = footprint
        self.hwm_rss = hwm_rss
        self.hwm_footprint = hwm_footprint


class MemorySampler:
    """Samples memory on a background thread and keeps per-span peaks (see the module doc)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, reader: MemoryReader | None = None) -> None:
        if not 0 < interval <= 0.010:
            raise ValueError(f"sampling interval must be in (0, 10 ms], got {interval * 1000:g} ms")
        self.interval = interval
        self.reader = reader or MemoryReader()
        self._snapshot = self.reader.snapshot
        self._edge: tuple[int, int | None, int, int | None] = (0, None, 0, None)  # last span-edge reading
        self._edge_ns = -(1 << 62)
        self._lock = threading.Lock()
        self._stack: list[PeakCell] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self.last_rss, self.last_footprint = self.reader.read()
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time the sampling thread used (measured, for the overhead figure)
        self.wall_seconds = 0.0
        self._started_at = 0.0

    # -- lifecycle
    def start(self) -> MemorySampler:
        if self._thread is None:
            self._running = True
            self._started_at = time.perf_counter()
            self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._running = False
            self._thread.join()
            self._thread = None
            self.wall_seconds += time.perf_counter() - self._started_at

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def cpu_share(self) -> float:
        """Fraction of one core the sampling thread used while it ran."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def _run(self) -> None:
        # time.sleep on a fixed schedule: cheaper per wake-up than Event.wait, and no drift.
        cpu_start = time.thread_time()
        next_at = time.perf_counter()
        try:
            while self._running:
                next_at += self.interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.perf_counter()  # fell behind (GIL held long): restart the schedule
                self.sample()
        finally:
            self.cpu_seconds += time.thread_time() - cpu_start

    def sample(self) -> None:
        """Take one reading and raise the innermost open span's peak."""
        rss, footprint = self.reader.read()
        with self._lock:
            self.last_rss, self.last_footprint = rss, footprint
            self.samples += 1
            if self._stack:
                top = self._stack[-1]
                if rss > top.rss:
                    top.rss = rss
                if footprint is not None and (top.footprint is None or footprint > top.footprint):
                    top.footprint = footprint

    # -- spans
    def open(self) -> PeakCell:
        """Start tracking a span's peak, seeded with the reading at the span's start.

        Spans mostly open right after another span edge (a parent opened, a sibling closed); a
        reading taken within `REUSE_NS` stands for "now" (page faults add at most ~1 MB in 50 us),
        which halves the system calls of back-to-back spans.
        """
        now = _perf_counter_ns()
        if now - self._edge_ns <= REUSE_NS:
            rss, footprint, hwm_rss, hwm_footprint = self._edge
        else:
            rss, footprint, hwm_rss, hwm_footprint = self._edge = self._snapshot()
            self._edge_ns = _perf_counter_ns()
        cell = PeakCell(rss, footprint, hwm_rss, hwm_footprint)
        with self._lock:
            self._stack.append(cell)
        return cell

    def close(self, cell: PeakCell) -> tuple[int, int | None]:
        """Stop tracking `cell`; return its (peak rss, peak footprint) and pass them to the parent."""
        rss, footprint, hwm_rss, hwm_footprint = self._edge = self._snapshot()
        self._edge_ns = _perf_counter_ns()
        with self._lock:
            cell.rss = max(cell.rss, rss)
            if footprint is not None:
                cell.footprint = footprint if cell.footprint is None else max(cell.footprint, footprint)
            if self._stack and self._stack[-1] is cell:
                self._stack.pop()
            elif cell in self._stack:  # closed out of order: still keep the stack consistent
                self._stack.remove(cell)
            peak_rss = max(cell.rss, hwm_rss) if hwm_rss > cell.hwm_rss else cell.rss
            peak_fp = cell.footprint
            if hwm_footprint is not None and cell.hwm_footprint is not None and hwm_footprint > cell.hwm_footprint:
                peak_fp = max(peak_fp or 0, hwm_footprint)
            if self._stack:
                parent = self._stack[-1]
                parent.rss = max(parent.rss, peak_rss)
                if peak_fp is not None:
                    parent.footprint = peak_fp if parent.footprint is None else max(parent.footprint, peak_fp)
        return peak_rss, peak_fp
