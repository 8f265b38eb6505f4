"""Planning: fit expanded cases to this machine.

`auto` becomes the engine that runs here. Where Core ML does not run, coreml cases move to the
reference engine if the suite allows it (its compute-unit axis collapses to `REFERENCE`, and cases
that become identical merge, remembering the units they came from); otherwise they are kept as
skipped cases with the reason, so the results say why they are missing.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence

from bench.engines.base import REFERENCE_COMPUTE_UNIT
from bench.suite.case import Case
from bench.suite.fields import COREML_ONLY_FIELDS


def plan_cases(
    cases: Sequence[Case],
    *,
    coreml_available: bool,
    reference_fallback: bool,
    engine_override: str | None = None,
) -> list[Case]:
    """Resolve engines and compute units for this machine; keep the suite's order."""
    planned: dict[str, Case] = {}
    for case in cases:
        fitted = _fit(case, coreml_available, reference_fallback, engine_override)
        key = fitted.case_id
        if key in planned:
            merged = planned[key].requested_compute_units + fitted.requested_compute_units
            planned[key] = planned[key].with_(requested_compute_units=tuple(dict.fromkeys(merged)))
        else:
            planned[key] = fitted
    return list(planned.values())


def _fit(case: Case, coreml_available: bool, reference_fallback: bool, engine_override: str | None) -> Case:
    requested_engine = engine_override or case.engine
    engine = requested_engine
    if engine == "auto":
        engine = "coreml" if coreml_available else "reference"
    elif engine == "coreml" and not coreml_available:
        if not reference_fallback:
            return case.with_(
                requested_engine=requested_engine,
                skip_reason=(
                    f"Core ML does not run on {platform.system() or 'this OS'} and suite {case.suite!r} "
                    "does not allow the reference engine (reference_fallback = false)"
                ),
            )
        engine = "reference"
    if engine == "reference":
        case = case.with_(**{name: None for name in COREML_ONLY_FIELDS})  # Core ML settings mean nothing here
        if case.compute_unit == REFERENCE_COMPUTE_UNIT:
            return case.with_(engine=engine, requested_engine=requested_engine)
        return case.with_(
            engine=engine,
            compute_unit=REFERENCE_COMPUTE_UNIT,
            requested_engine=requested_engine,
            requested_compute_units=(case.compute_unit,),
        )
    if case.compute_unit == REFERENCE_COMPUTE_UNIT:
        return case.with_(
            engine=engine,
            requested_engine=requested_engine,
            skip_reason="compute unit REFERENCE belongs to the reference engine, not Core ML",
        )
    return case.with_(engine=engine, requested_engine=requested_engine)
