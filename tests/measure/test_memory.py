"""The memory sampler: per-span peaks that see a known allocation, nested spans, high-water marks."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil
import pytest

from bench.measure.memory import DEFAULT_INTERVAL, MemoryReader, MemorySampler, max_rss_bytes
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
        MemorySampler(interval=0.05)


def test_sampler_samples_at_its_rate() -> None:
    with MemorySampler(interval=0.005) as sampler:
        threading.Event().wait(0.2)
    # A loaded CI box may starve the thread a little; it must still sample most intervals.
    assert sampler.samples >= 15
    assert 0.0 <= sampler.cpu_share < 0.5


def test_span_peak_sees_a_held_allocation() -> None:
    sampler = MemorySampler().start()
    recorder = MeasuringRecorder(sampler)
    baseline = sampler.reader.read()[0]
    with recorder.span("alloc"):
        block = _touch(160)
        threading.Event().wait(0.05)  # several sampling intervals
        del block
    with recorder.span("after"):
        threading.Event().wait(0.03)
    sampler.stop()
    alloc, after = recorder.records
    assert alloc.stage == "alloc" and after.stage == "after"
    assert alloc.peak_rss - baseline == pytest.approx(160 * MiB, abs=24 * MiB)
    assert after.peak_rss < alloc.peak_rss - 100 * MiB  # the freed block is not charged to the next span


def test_short_spike_is_caught_by_the_high_water_mark() -> None:
    # Without the sampler thread running at all, the kernel high-water mark still shows a new
    # lifetime peak reached inside the span.
    sampler = MemorySampler()  # not started
    recorder = MeasuringRecorder(sampler)
    before = max_rss_bytes()
    size = max(64, (before >> 20) + 64)  # beyond the current lifetime peak, so it must raise it
    with recorder.span("spike"):
        block = _touch(size)
        del block
    (spike,) = recorder.records
    assert spike.peak_rss >= size * MiB


def test_nested_spans_get_their_own_peaks() -> None:
    sampler = MemorySampler().start()
    recorder = MeasuringRecorder(sampler)
    with recorder.span("outer"):
        with recorder.span("small"):
            block = _touch(32)
            threading.Event().wait(0.03)
            del block
        with recorder.span("big"):
            block = _touch(128)
            threading.Event().wait(0.03)
            del block
        with recorder.span("none"):
            threading.Event().wait(0.03)
    sampler.stop()
    peaks = {r.stage: r.peak_rss for r in recorder.records}
    assert [r.stage for r in recorder.records] == ["small", "big", "none", "outer"]
    assert peaks["outer"] >= peaks["big"] >= peaks["small"] + 64 * MiB
    assert peaks["none"] < peaks["big"] - 64 * MiB


def test_recorder_phases_steps_and_failed_stage() -> None:
    recorder = MeasuringRecorder(MemorySampler())
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
