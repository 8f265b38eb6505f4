"""case_summary's warm load: the sum over parts of each part's median reload in measured repeats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.report.summary import case_summary
from bench.schema import SCHEMA_VERSION
from bench.store import RESULTS_FILE, ResultsWriter, load_results


def test_warm_load_under_reduce_memory(tmp_path: Path) -> None:
    base = {"schema_version": SCHEMA_VERSION, "timestamp": "2026-01-01T00:00:00.000Z", "run_id": "r", "case_id": "a",
            "case": "a", "model": "m", "status": "ok", "reduce_memory": True}  # fmt: skip
    rows = [{**base, "phase": "cold", "stage": "load/unet", "metric": "latency", "value": 9.0, "unit": "s"}]
    for repeat, (unet, vae) in enumerate([(1.0, 0.5), (3.0, 0.5), (2.5, 0.7)]):
        for part, value in (("unet", unet), ("vae_decoder", vae)):
            rows.append({**base, "phase": "measured", "repeat": repeat, "stage": f"load/{part}", "metric": "latency",
                         "value": value, "unit": "s"})  # fmt: skip
    rows.append({**base, "stage": "outcome", "metric": "wall_time", "value": 1.0, "unit": "s"})
    other = {**base, "case_id": "b", "case": "b", "reduce_memory": False}
    rows += [{**other, "phase": "cold", "stage": "load/unet", "metric": "latency", "value": 4.0, "unit": "s"},
             {**other, "stage": "outcome", "metric": "wall_time", "value": 1.0, "unit": "s"}]  # fmt: skip
    ResultsWriter(tmp_path / RESULTS_FILE).append(rows)
    summary = case_summary(load_results(tmp_path)).set_index("case_id")
    assert summary.loc["a", "warm_load_s"] == pytest.approx(2.5 + 0.5)  # medians 2.5 (unet) + 0.5 (vae)
    assert summary.loc["a", "cold_load_s"] == pytest.approx(9.0)
    assert math.isnan(summary.loc["b", "warm_load_s"]) and summary.loc["b", "cold_load_s"] == pytest.approx(4.0)
