"""Validity rules: too few repeats, too much spread, a throttled machine, an unfinished case."""

from __future__ import annotations

from bench.schema import Measurement
from bench.suite.case import Case
from bench.validity import judge, power_problems


def _e2e(*seconds: float) -> list[Measurement]:
    return [Measurement("end_to_end", "latency", s, "s", "measured", i) for i, s in enumerate(seconds)]


CASE = Case(suite="s", model="m", repeats=3, min_repeats=3, max_spread=0.10)
NOMINAL = {"thermal": {"available": True, "pressure": "nominal"}, "low_power_mode": {"available": True, "enabled": False}}


def test_steady_case_is_valid() -> None:
    verdict = judge(CASE, "ok", _e2e(1.00, 1.02, 1.01), {"start": NOMINAL, "end": NOMINAL})
    assert verdict.valid is True and verdict.reason is None


def test_each_rule_gives_its_reason() -> None:
    assert "2 measured repeats, fewer than min_repeats = 3" in judge(CASE, "ok", _e2e(1.0, 1.0)).reason
    noisy = judge(CASE, "ok", _e2e(1.0, 1.5, 2.0))
    assert noisy.valid is False and "spread IQR/median 0.333 > max_spread 0.1" in noisy.reason
    hot = {**NOMINAL, "thermal": {"available": True, "pressure": "serious"}}
    assert judge(CASE, "ok", _e2e(1, 1, 1), {"start": NOMINAL, "end": hot}).reason == "thermal state serious at case end"
    low = {**NOMINAL, "low_power_mode": {"available": True, "enabled": True}}
    assert judge(CASE, "ok", _e2e(1, 1, 1), {"start": low, "end": NOMINAL}).reason == "Low Power Mode on at case start"
    assert judge(CASE, "error", _e2e(1, 1, 1)).reason == "the case did not finish (error)"
    assert judge(CASE, "skipped", []).valid is None


def test_power_problems_read_what_each_os_reports() -> None:
    assert power_problems({"thermal": {"available": True, "CPU_Speed_Limit": 70}}) == ["CPU speed limited to 70% (thermal)"]
    linux = {"thermal": {"available": True, "celsius": {"zone0": 45.0}}, "low_power_mode": {"available": False}}
    assert power_problems(linux) == [] and power_problems(None) == []
