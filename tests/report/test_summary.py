"""Summary medians from raw rows: iter/s from step spans, warm-up and cold rows excluded."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bench.report.summary import case_summary, render_summary
from bench.schema import SCHEMA_VERSION
from bench.store import RESULTS_FILE, ResultsWriter, load_results


def rows_for(case_id: str, *, step_seconds: list[list[float]], e2e: list[float], warmup_e2e: float) -> list[dict]:
    base = {"schema_version": SCHEMA_VERSION, "timestamp": "2026-01-01T00:00:00.000Z", "run_id": "r", "case_id": case_id, "case": f"case {case_id}", "suite": "s", "model": "m",
            "engine": "reference", "compute_unit": "REFERENCE", "status": "ok"}  # fmt: skip
    rows = [
        {**base, "phase": "cold", "stage": "load/unet", "metric": "latency", "value": 2.0, "unit": "s"},
        {**base, "phase": "cold", "stage": "first_predict/unet", "metric": "latency", "value": 1.0, "unit": "s"},
        {**base, "phase": "warmup", "repeat": 0, "stage": "end_to_end", "metric": "latency", "value": warmup_e2e, "unit": "s"},
        {**base, "phase": "warmup", "repeat": 0, "stage": "unet", "step": 0, "metric": "latency", "value": 100.0, "unit": "s"},
    ]  # fmt: skip
    for repeat, (steps, total) in enumerate(zip(step_seconds, e2e)):
        rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "end_to_end", "metric": "latency",
                     "value": total, "unit": "s"})  # fmt: skip
        for step, seconds in enumerate(steps):
            unet, scheduler = seconds * 0.9, seconds * 0.1
            for stage, value in (("unet", unet), ("scheduler", scheduler)):
                rows.append({**base, "phase": "measured", "repeat": repeat, "stage": stage, "step": step,
                             "metric": "latency", "value": value, "unit": "s"})  # fmt: skip
        rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "vae_decoder", "metric": "peak_rss",
                     "value": 1000.0 + repeat, "unit": "bytes"})  # fmt: skip
    rows.append({**base, "stage": "process", "metric": "peak_rss", "value": 5000.0, "unit": "bytes"})
    rows.append({**base, "stage": "outcome", "metric": "wall_time", "value": 9.0, "unit": "s"})
    return rows


def test_medians_and_iter_per_s(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / RESULTS_FILE)
    writer.append(rows_for("a", step_seconds=[[0.5, 0.5], [0.25, 0.25], [1.0, 1.0]], e2e=[3.0, 1.0, 2.0], warmup_e2e=50.0))
    failed = [{"schema_version": SCHEMA_VERSION, "timestamp": "2026-01-01T00:00:00.000Z", "run_id": "r", "case_id": "b", "case": "case b", "stage": "outcome", "metric": "wall_time", "value": 1.0,
               "unit": "s", "status": "error", "error": "PipelineError: boom"}]  # fmt: skip
    writer.append(failed)
    summary = case_summary(load_results(tmp_path))
    assert summary["case_id"].tolist() == ["a", "b"]
    a = summary.iloc[0]
    assert a["status"] == "ok" and a["repeats"] == 3
    assert a["end_to_end_s"] == pytest.approx(2.0)  # median of measured, the 50 s warm-up is excluded
    assert a["iter_per_s"] == pytest.approx(2.0)  # 1 / median step time (0.5 s = unet + scheduler)
    assert a["unet_s"] == pytest.approx(0.45)
    assert a["cold_load_s"] == pytest.approx(3.0)
    assert a["peak_rss_bytes"] == 5000.0
    b = summary.iloc[1]
    assert b["status"] == "error" and b["error"] == "PipelineError: boom"
    assert b["end_to_end_s"] is None or b["end_to_end_s"] != b["end_to_end_s"]

    console = Console(width=160, record=True)
    render_summary(summary, console, title="t")
    text = console.export_text()
    assert "t · case" in text  # the word every label shares moves to the title
    assert " a " in text and "2.00s" in text and "error" in text and "PipelineError: boom" in text
    assert "unet/step" in text and "450.0" in text


def test_incomplete_case_is_marked(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / RESULTS_FILE)
    writer.append([r for r in rows_for("a", step_seconds=[[0.5]], e2e=[1.0], warmup_e2e=1.0) if r["stage"] != "outcome"])
    summary = case_summary(load_results(tmp_path, incomplete="keep"))
    assert summary["status"].tolist() == ["incomplete"]
