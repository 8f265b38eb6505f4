"""Memory: the worker's span-edge peaks and high-water marks, and the runner's sampling by PID."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from bench.measure.memory import (
    DEFAULT_INTERVAL,
    MemoryReader,
    MemorySamples,
    ProcessSampler,
    SpanPeakTracker,
    attribute_peaks,
    combine_peaks,
    max_rss_bytes,
)
from bench.measure.spans import MeasuringRecorder

MiB = 1 << 20


def _touch(megabytes: int) -> np.ndarray:
    block = np.ones(megabytes * MiB // 8, dtype=np.float64)  # ones() writes every page: resident
    return block


def test_reader_agrees_with_psutil() -> None:
    reader = MemoryReader()
    rss, _ = reader.read()
    expected = psutil.Process().memory_info().rss
    assert abs(rss - expected) < 8 * MiB


def test_interval_is_at_most_10ms() -> None:
    assert DEFAULT_INTERVAL <= 0.010
    with pytest.raises(ValueError, match="10 ms"):
        ProcessSampler(1, interval=0.05)


_CHILD = """
import sys, time
import numpy as np
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
start = time.perf_counter_ns()
block = np.ones({mb} << 17)  # float64: {mb} MiB, every page written
time.sleep(0.15)
del block
end = time.perf_counter_ns()
time.sleep(0.1)
print(start, end, flush=True)
"""


def test_process_sampler_sees_another_process_allocate() -> None:
    megabytes = 160
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(mb=megabytes)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout.readline().strip() == "ready"
    sampler = ProcessSampler(child.pid).start()
    time.sleep(0.05)
    child.stdin.write("go\n")
    child.stdin.flush()
    start, end = (int(v) for v in child.stdout.readline().split())
    child.wait(timeout=10)
    samples = sampler.stop()
    assert samples.count >= 20 and np.all(np.diff(samples.times_ns) > 0)
    before = attribute_peaks(samples, [(samples.times_ns[0], start)])[0]
    (inside,) = attribute_peaks(samples, [(start, end)])
    assert inside.samples >= 5
    assert inside.rss - before.rss == pytest.approx(megabytes * MiB, abs=24 * MiB)
    assert 0.0 <= sampler.cpu_share < 0.5


def test_attribute_peaks_takes_samples_inside_each_span() -> None:
    samples = MemorySamples(np.array([10, 20, 30, 40]), np.array([1, 5, 3, 9]), np.array([-1, -1, -1, -1]))
    peaks = attribute_peaks(samples, [(10, 30), (25, 35), (41, 50), (0, 100)])
    assert [(p.rss, p.footprint, p.samples) for p in peaks] == [(5, None, 3), (3, None, 1), (None, None, 0), (9, None, 4)]
    assert combine_peaks(7, 5) == 7 and combine_peaks(None, 5) == 5 and combine_peaks(4, None) == 4


def test_edge_peaks_see_a_held_allocation() -> None:
    recorder = MeasuringRecorder(SpanPeakTracker())
    baseline = MemoryReader().read()[0]
    with recorder.span("alloc"):
        block = _touch(160)
        with recorder.span("inner"):  # an edge inside the span sees the block
            pass
        del block
    with recorder.span("after"):
        pass
    alloc = next(r for r in recorder.records if r.stage == "alloc")
    after = next(r for r in recorder.records if r.stage == "after")
    assert alloc.peak_rss - baseline == pytest.approx(160 * MiB, abs=24 * MiB)
    assert after.peak_rss < alloc.peak_rss - 100 * MiB  # the freed block is not charged to the next span


def test_short_spike_is_caught_by_the_high_water_mark() -> None:
    # No edge inside the span sees the block, but the kernel high-water mark shows a new lifetime
    # peak reached inside the span.
    recorder = MeasuringRecorder(SpanPeakTracker())
    before = max_rss_bytes()
    size = max(64, (before >> 20) + 64)  # beyond the current lifetime peak, so it must raise it
    with recorder.span("spike"):
        block = _touch(size)
        del block
    (spike,) = recorder.records
    assert spike.peak_rss >= size * MiB


def test_nested_spans_carry_peaks_to_their_parent() -> None:
    recorder = MeasuringRecorder(SpanPeakTracker())
    with recorder.span("outer"):
        with recorder.span("big"):
            block = _touch(128)
            with recorder.span("edge"):
                pass
            del block
        with recorder.span("none"):
            pass
    peaks = {r.stage: r.peak_rss for r in recorder.records}
    assert [r.stage for r in recorder.records] == ["edge", "big", "none", "outer"]
    assert peaks["outer"] >= peaks["big"] >= peaks["none"] + 100 * MiB


def test_recorder_phases_steps_and_failed_stage() -> None:
    recorder = MeasuringRecorder(SpanPeakTracker())
    recorder.set_phase("measured", 2)
    with recorder.span("unet", step=3):
        time.sleep(0.001)
    with pytest.raises(RuntimeError), recorder.span("vae_decoder"):
        raise RuntimeError("boom")
    (record,) = recorder.drain()
    assert (record.stage, record.step, record.phase, record.repeat) == ("unet", 3, "measured", 2)
    assert record.seconds >= 0.001
    assert recorder.failed_stage == ("vae_decoder", None)
    assert recorder.drain() == []


def test_recorder_without_sampler_times_only() -> None:
    recorder = MeasuringRecorder(None)
    with recorder.span("tokenize"):
        pass
    (record,) = recorder.records
    assert record.peak_rss is None and record.peak_footprint is None and record.seconds >= 0


def test_footprint_absent_off_macos_with_reason() -> None:
    import platform

    reader = MemoryReader()
    if platform.system() == "Darwin":
        assert reader.has_footprint and reader.read()[1] > 0
    else:
        assert not reader.has_footprint and reader.read()[1] is None
        assert "Darwin" in reader.footprint_absent_reason
