"""Engine reports inside spans: on-device times replace remote round trips; values attach to the span."""

from __future__ import annotations

import pytest

from bench.engines import annotate
from bench.engines.annotate import DeviceTiming
from bench.measure import spans as spans_module
from bench.measure.spans import MeasuringRecorder


@pytest.fixture
def clock(monkeypatch):
    """A perf_counter_ns the test advances by hand (seconds)."""
    now = [0]

    class Time:
        @staticmethod
        def perf_counter_ns():
            return now[0]

    monkeypatch.setattr(spans_module, "time", Time)

    def advance(seconds):
        now[0] += round(seconds * 1e9)

    return advance


@pytest.fixture
def recorder():
    recorder = MeasuringRecorder()
    previous = annotate.listen(recorder)
    yield recorder
    annotate.listen(previous)


def test_remote_round_trips_are_replaced_by_on_device_time_in_every_open_span(clock, recorder):
    with recorder.span("end_to_end"):
        clock(0.05)  # host work: tokenize
        with recorder.span("diffusion"):
            for step in range(2):
                with recorder.span("unet", step=step):
                    clock(1.3)  # the host waits for the device: transfer + prediction
                    annotate.device_timing(DeviceTiming(device_seconds=0.9, round_trip_seconds=1.3))
                    clock(0.01)  # host-side work in the same span (casts)
                with recorder.span("scheduler", step=step):
                    clock(0.02)
    spans = {(s.stage, s.step): s for s in recorder.drain()}
    assert spans[("unet", 0)].seconds == pytest.approx(0.9 + 0.01)
    assert spans[("unet", 0)].host_round_trip == pytest.approx(1.3)
    assert spans[("scheduler", 0)].host_round_trip is None
    assert spans[("diffusion", None)].seconds == pytest.approx(2 * (0.9 + 0.01 + 0.02))
    assert spans[("diffusion", None)].host_round_trip is None  # round trips belong to the calling stage
    assert spans[("end_to_end", None)].seconds == pytest.approx(0.05 + 2 * 0.93)


def test_values_attach_to_the_innermost_span_and_reports_without_a_listener_are_dropped(clock, recorder):
    with recorder.span("load/unet"):
        annotate.span_value("load_cache_warm", 1, "bool")
    annotate.span_value("orphan", 1, "bool")  # no open span: nothing to attach to
    (span,) = recorder.drain()
    assert list(span.values) == [("load_cache_warm", 1.0, "bool")]
    annotate.listen(None)
    annotate.device_timing(DeviceTiming(1.0, 2.0))  # no listener: no error
