"""Validity rules: when a case's figures should not be trusted, as MLPerf and asv decide it.

A case is invalid when any rule is broken; the reasons go into every row of the case (`valid`,
`invalid_reason`), every summary and report, and `bench compare` refuses to gate on it:

- fewer measured repeats than the case's `min_repeats` (a median of too few samples);
- an end-to-end spread, IQR / median, above the case's `max_spread` (a noisy machine);
- a thermal state above nominal, or Low Power Mode, at the case's start or end (a throttled
  machine), where the OS reports them;
- a case that did not finish (error, timeout, interrupted): its figures are partial.

Skipped cases have no figures and no validity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.measure.stats import describe
from bench.schema import Measurement, Outcome
from bench.suite.case import Case

#: Thermal levels above nominal, as macOS's thermal pressure names them (NSProcessInfo and
#: the com.apple.system.thermalpressurelevel notification).
ELEVATED_THERMAL = ("moderate", "fair", "heavy", "serious", "trapping", "critical", "sleeping")


@dataclass(frozen=True)
class Validity:
    """A case's verdict: valid, or invalid with every reason."""

    valid: bool | None
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None

    def outcome(self, status: str, error: str | None) -> Outcome:
        return Outcome(status, error, self.valid, self.reason)


def judge(case: Case, status: str, measurements: Sequence[Measurement],
          power: Mapping[str, Mapping[str, Any]] | None = None) -> Validity:  # fmt: skip
    """The validity of a case from its status, its measurements and the power state at its start
    and end (`{"start": power_state(), "end": power_state()}`)."""
    if status == "skipped":
        return Validity(None)
    reasons: list[str] = []
    if status != "ok":
        reasons.append(f"the case did not finish ({status})")
    e2e = [m.value for m in measurements
           if m.phase == "measured" and m.stage == "end_to_end" and m.metric == "latency" and m.value is not None]  # fmt: skip
    if len(e2e) < case.min_repeats:
        reasons.append(f"{len(e2e)} measured repeats, fewer than min_repeats = {case.min_repeats}")
    stats = describe(e2e)
    if stats.n >= 2 and stats.median > 0 and stats.iqr / stats.median > case.max_spread:
        reasons.append(f"end-to-end spread IQR/median {stats.iqr / stats.median:.3f} > max_spread {case.max_spread:g}")
    for moment, state in (power or {}).items():
        reasons += [f"{problem} at case {moment}" for problem in power_problems(state)]
    return Validity(not reasons, tuple(reasons))


def power_problems(state: Mapping[str, Any] | None) -> list[str]:
    """What in a `power_state()` reading makes measurements untrustworthy (empty when unknown)."""
    if not state:
        return []
    problems = []
    thermal = state.get("thermal") or {}
    level = thermal.get("pressure") or thermal.get("thermal_state")
    if isinstance(level, str) and level.lower() in ELEVATED_THERMAL:
        problems.append(f"thermal state {level.lower()}")
    speed = thermal.get("CPU_Speed_Limit")
    if isinstance(speed, int) and speed < 100:
        problems.append(f"CPU speed limited to {speed}% (thermal)")
    if (state.get("low_power_mode") or {}).get("enabled") is True:
        problems.append("Low Power Mode on")
    return problems
