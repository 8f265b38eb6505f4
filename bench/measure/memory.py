"""Peak memory per span, sampled from outside the measured process.

Core ML's Python bindings hold the GIL for the whole of every compile, load and predict, so a
sampling thread inside the worker cannot run while a model computes. Memory is therefore sampled
by the runner: `ProcessSampler` reads the worker's RSS (psutil) and, on macOS, its phys_footprint
(`proc_pid_rusage(worker_pid, RUSAGE_INFO_V4)`) every `interval`, stamping each sample with
`time.perf_counter_ns`, the same system-wide monotonic clock the worker's spans use. After the
case, `attribute_peaks` gives each span the maximum of the samples taken inside it.

Inside the worker, `SpanPeakTracker` reads memory at every span edge and keeps the kernel's
high-water marks (`ru_maxrss`; the lifetime maximum footprint on macOS): if the process reached a
new lifetime peak while a span was open, that peak happened inside the span. A short spike between
two samples is caught that way. A span's peak is the larger of the two (`combine_peaks`).
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import psutil

from bench.measure.darwin import FootprintReader, footprint_reader

#: Seconds between samples: at least every 10 ms, for under 2 % of one core
#: (tests/benchmarks/test_measure_overhead.py measures both).
DEFAULT_INTERVAL = 0.010
# ru_maxrss is KiB on Linux and bytes on macOS.
_MAXRSS_SCALE = 1 if platform.system() == "Darwin" else 1024
#: A span-edge reading this recent (ns) is reused by the next span opening (see SpanPeakTracker.open).
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
    namedtuple); spans read memory at both edges and must stay under 20 us. Closures with local
    names keep the per-call Python overhead minimal.
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


class SpanPeakTracker:
    """Peak memory of nested spans from edge readings and the kernel's high-water marks (module doc).

    `open()` at a span's start, `close()` at its end; a closed span's peak is carried into its
    parent, so every enclosing span sees it. Single-threaded: the worker's recorder calls it.
    """

    def __init__(self, reader: MemoryReader | None = None) -> None:
        self.reader = reader or MemoryReader()
        self._snapshot = self.reader.snapshot
        self._edge: tuple[int, int | None, int, int | None] = (0, None, 0, None)  # last span-edge reading
        self._edge_ns = -(1 << 62)
        self._stack: list[PeakCell] = []

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
        self._stack.append(cell)
        return cell

    def close(self, cell: PeakCell) -> tuple[int, int | None]:
        """Stop tracking `cell`; return its (peak rss, peak footprint) and pass them to the parent."""
        rss, footprint, hwm_rss, hwm_footprint = self._edge = self._snapshot()
        self._edge_ns = _perf_counter_ns()
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


# --------------------------------------------------------------------------- out of process


@dataclass(frozen=True)
class MemorySamples:
    """What `ProcessSampler` saw: sample times (perf_counter_ns), RSS and footprint (bytes; -1 absent)."""

    times_ns: np.ndarray
    rss: np.ndarray
    footprint: np.ndarray

    @property
    def count(self) -> int:
        return int(self.times_ns.size)


@dataclass(frozen=True)
class SampledPeak:
    """The samples inside one span: their maximum RSS / footprint (None without samples) and count."""

    rss: int | None
    footprint: int | None
    samples: int


class ProcessSampler:
    """Samples another process's memory by PID on a thread of this process (the runner).

    On macOS RSS and phys_footprint come from proc_pid_rusage on the worker's PID (the number
    jetsam enforces); on Linux RSS from the worker's /proc/<pid>/statm through a kept-open
    descriptor; elsewhere from psutil. Every sample is stamped with `time.perf_counter_ns`, the
    clock the worker's spans use (system-wide monotonic on Linux and macOS), so spans and samples
    line up.
    """

    def __init__(self, pid: int, interval: float = DEFAULT_INTERVAL) -> None:
        if not 0 < interval <= 0.010:
            raise ValueError(f"sampling interval must be in (0, 10 ms], got {interval * 1000:g} ms")
        self.pid = pid
        self.interval = interval
        self._process = psutil.Process(pid)
        footprint, self.footprint_absent_reason = footprint_reader(pid)
        self._footprint: FootprintReader | None = footprint
        self._read_rss = self._process_rss_reader()
        self._times: list[int] = []
        self._rss: list[int] = []
        self._footprints: list[int] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self.cpu_seconds = 0.0  # CPU time the sampling thread used (measured, for the overhead figure)
        self.wall_seconds = 0.0
        self._started_at = 0.0

    @property
    def has_footprint(self) -> bool:
        return self._footprint is not None

    def _process_rss_reader(self) -> Callable[[], int]:
        """The worker's RSS: a pread of its /proc statm where there is one. psutil reopens and
        parses that file on every call, which after each 10 ms sleep costs ~190 us of CPU against
        ~45 us for a pread (the sampler must stay under 2 % of a core)."""
        try:
            fd = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY)
        except OSError:
            return lambda: self._process.memory_info().rss
        self._statm = fd
        page, pread = os.sysconf("SC_PAGE_SIZE"), os.pread

        def rss() -> int:
            fields = pread(fd, 128, 0).split()
            if not fields:  # the process is gone (a reaped process's statm reads empty)
                raise ProcessLookupError(self.pid)
            return int(fields[1]) * page

        return rss

    def start(self) -> ProcessSampler:
        if self._thread is None:
            self._running = True
            self._started_at = time.perf_counter()
            self._thread = threading.Thread(target=self._run, name=f"memory-sampler-{self.pid}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> MemorySamples:
        """Stop sampling (idempotent) and return every sample taken."""
        if self._thread is not None:
            self._running = False
            self._thread.join()
            self._thread = None
            self.wall_seconds += time.perf_counter() - self._started_at
        statm = getattr(self, "_statm", None)
        if statm is not None:
            os.close(statm)
            self._statm = None
        return self.samples()

    def samples(self) -> MemorySamples:
        count = min(len(self._times), len(self._rss), len(self._footprints))
        return MemorySamples(
            np.asarray(self._times[:count], dtype=np.int64),
            np.asarray(self._rss[:count], dtype=np.int64),
            np.asarray(self._footprints[:count], dtype=np.int64),
        )

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
                if not self.sample():
                    break  # the process is gone
                next_at += self.interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.perf_counter()  # fell behind: restart the schedule
        finally:
            self.cpu_seconds += time.thread_time() - cpu_start

    def sample(self) -> bool:
        """Take one reading; False once the process has exited."""
        stamp = _perf_counter_ns()
        try:
            if self._footprint is not None:
                resident, footprint, _ = self._footprint.read()
            else:
                resident, footprint = self._read_rss(), -1
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError, ValueError, IndexError):
            return False
        # Appended in this order and read up to the shortest list: a reader never sees half a sample.
        self._times.append(stamp)
        self._rss.append(resident)
        self._footprints.append(footprint)
        return True


def attribute_peaks(samples: MemorySamples, spans: Sequence[tuple[int, int]]) -> list[SampledPeak]:
    """For each (start_ns, end_ns) span, the largest samples taken inside it (samples are in time order)."""
    starts = np.searchsorted(samples.times_ns, [start for start, _ in spans], side="left")
    ends = np.searchsorted(samples.times_ns, [end for _, end in spans], side="right")
    peaks: list[SampledPeak] = []
    for first, last in zip(starts.tolist(), ends.tolist()):
        if last <= first:
            peaks.append(SampledPeak(None, None, 0))
            continue
        footprint = int(samples.footprint[first:last].max())
        peaks.append(SampledPeak(int(samples.rss[first:last].max()), footprint if footprint >= 0 else None, last - first))
    return peaks


def combine_peaks(edge: int | None, sampled: int | None) -> int | None:
    """A span's peak: the larger of its edge/high-water-mark peak and its sampled peak."""
    if edge is None:
        return sampled
    return edge if sampled is None else max(edge, sampled)
