"""The worker's measurement logic in-process: phases, repeats, derived rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.case_exec import Generation
from bench.measure.spans import SpanMeasurement
from bench.suite.case import Case
from bench.worker import EventSink, repeat_rows, run_case, span_rows, step_times


class Capture(EventSink):
    def __init__(self) -> None:
        super().__init__(None)
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def span(stage: str, step: int | None, seconds: float) -> SpanMeasurement:
    return SpanMeasurement(stage, step, "measured", 0, seconds, 100, None)


def test_step_time_is_unet_plus_scheduler_per_step() -> None:
    spans = [span("unet", 0, 0.4), span("scheduler", 0, 0.1), span("unet", 1, 0.2), span("scheduler", 1, 0.1),
             span("refiner", 2, 0.7), span("scheduler", 2, 0.1), span("vae_decoder", None, 5.0)]  # fmt: skip
    assert step_times(spans) == pytest.approx([0.5, 0.3, 0.8])
    rows = repeat_rows(spans, Generation(unet_calls=3), "measured", 0, "t")
    ips = {r["metric"]: r["value"] for r in rows}
    assert ips["iter_per_s"] == 1 / 0.5 and ips["unet_calls"] == 3


def test_span_rows_skip_absent_footprint() -> None:
    rows = span_rows([SpanMeasurement("unet", 2, "warmup", 0, 0.5, 123, None)], "t")
    assert [(r["metric"], r["value"], r["unit"]) for r in rows] == [("latency", 0.5, "s"), ("peak_rss", 123, "bytes")]
    rows = span_rows([SpanMeasurement("unet", 2, "warmup", 0, 0.5, 123, 456)], "t")
    assert rows[-1]["metric"] == "peak_footprint" and rows[-1]["value"] == 456


def test_run_case_phases_in_process(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fake_executor import FakeExecutor

    case = Case(suite="s", model="fake-ok", steps=2, warmup=2, repeats=3, quality=True)
    sink = Capture()
    run_case(case, FakeExecutor, sink, tmp_path / "image.png")
    kinds = [e["event"] for e in sink.events]
    assert kinds[:3] == ["stage", "meta", "phase"]
    phases = [(e["phase"], e["repeat"]) for e in sink.events if e["event"] == "phase"]
    assert phases == [("cold", None), ("warmup", 0), ("warmup", 1), ("measured", 0), ("measured", 1), ("measured", 2)]
    rows = [r for e in sink.events if e["event"] == "rows" for r in e["rows"]]
    e2e = [(r["phase"], r["repeat"]) for r in rows if r["stage"] == "end_to_end" and r["metric"] == "latency"]
    assert e2e == [("warmup", 0), ("warmup", 1), ("measured", 0), ("measured", 1), ("measured", 2)]
    assert {r["phase"] for r in rows if r["stage"].startswith("load/")} == {"cold"}
    process = {r["metric"] for r in rows if r["stage"] == "process"}
    assert {"peak_rss", "sampler_cpu_share", "sampler_samples"} <= process
    assert [r["value"] for r in rows if r["metric"] == "psnr"] == [42.0]
    assert (tmp_path / "image.png").exists()


def test_span_rows_of_a_remote_call_and_engine_values() -> None:
    from bench.engines.annotate import SpanValue

    span = SpanMeasurement("unet", 2, "measured", 0, 0.8, None, None, 1.3, (SpanValue("load_cache_warm", 1.0, "bool"),))
    rows = span_rows([span], "t")
    assert [(r["metric"], r["value"], r["unit"]) for r in rows] == [
        ("latency", 0.8, "s"), ("host_round_trip", 1.3, "s"), ("load_cache_warm", 1.0, "bool")]
