"""Charts: drawn from real results with title, axis units and legend; skipped (not empty) without data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.report.charts import all_charts, iter_per_s_heatmap, measured_vs_published, stage_breakdown
from bench.report.matching import match_cases
from bench.report.summary import case_summary, stage_summary
from bench.schema import SCHEMA_VERSION


def _axes_texts(chart) -> tuple[str, str, str, list[str]]:  # noqa: ANN001
    axes = chart.figure.axes[0]
    legend = axes.get_legend()
    return axes.get_title(), axes.get_xlabel(), axes.get_ylabel(), [t.get_text() for t in legend.get_texts()] if legend else []


def test_every_chart_from_a_real_run(example_results: pd.DataFrame, tmp_path: Path) -> None:
    summary, stages = case_summary(example_results), stage_summary(example_results)
    charts = all_charts(example_results, summary, stages, match_cases(summary))
    by_name = {c.name: c for c in charts}
    assert set(by_name) == {"stage_breakdown", "iter_per_s_heatmap", "latency_vs_memory", "measured_vs_published",
                            "step_trace", "load_by_part"}  # fmt: skip
    # the tiny models have no published figure: that chart is skipped with the reason, not drawn empty
    assert by_name["measured_vs_published"].figure is None
    assert "no case matches" in by_name["measured_vs_published"].skipped
    for chart in charts:
        if chart.figure is None:
            continue
        title, xlabel, ylabel, legend = _axes_texts(chart)
        assert title and ylabel, chart.name
        assert "(s)" in ylabel or "(ms)" in ylabel or chart.name == "iter_per_s_heatmap", chart.name
        if chart.name != "iter_per_s_heatmap":  # the heat map's colour bar is its legend
            assert legend, chart.name
        paths = chart.save(tmp_path)
        assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
        assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:500]
    stacked = by_name["stage_breakdown"]
    assert _axes_texts(stacked)[3] == ["text encoders", "UNet steps (denoising loop)", "VAE"]
    heat = by_name["iter_per_s_heatmap"].figure
    assert heat.axes[1].get_ylabel() == "iter/s (denoising steps per second)"
    labels = _axes_texts(by_name["latency_vs_memory"])
    assert labels[1] == "peak RSS (MiB)" and set(labels[3]) == set(summary["quantization"].astype(str))
    psnr_notes = [t.get_text() for t in by_name["latency_vs_memory"].figure.axes[0].texts]
    assert len(psnr_notes) == summary["psnr_db"].notna().sum() and all(n.endswith(" dB") for n in psnr_notes)


def test_measured_vs_published_bars_carry_the_ratio() -> None:
    summary = pd.DataFrame([{
        "run_id": "r", "case_id": "a", "case": "ios", "model": "sdxl-base-ios17", "status": "ok", "resolution": 768,
        "attention": "SPLIT_EINSUM", "quantization": "mbp-4.04", "compute_unit": "CPU_AND_NE", "steps": 20,
        "device": "iPhone16,2", "chip": None, "end_to_end_s": 46.5, "iter_per_s": 0.6,
    }])  # fmt: skip
    chart = measured_vs_published(match_cases(summary))
    assert chart.figure is not None
    axes = chart.figure.axes[0]
    assert [t.get_text() for t in axes.texts] == ["×1.50"]  # 46.5 / 31
    assert axes.get_ylabel() == "end-to-end latency (s)" and len(axes.patches) == 2


def test_no_data_means_skipped(example_results: pd.DataFrame) -> None:
    failed = example_results[example_results["stage"].astype("string") == "outcome"]
    summary, stages = case_summary(failed), stage_summary(failed)
    assert stage_breakdown(summary, stages).figure is None
    heat = iter_per_s_heatmap(failed)
    assert heat.figure is None and heat.skipped == "no denoising steps measured"


@pytest.mark.parametrize("name", ["stage_breakdown", "step_trace"])
def test_charts_from_two_runs_label_the_run(example_results: pd.DataFrame, name: str) -> None:
    second = example_results.copy()
    second["run_id"] = "20990101T000000Z-beef"
    both = pd.concat([example_results, second], ignore_index=True)
    summary, stages = case_summary(both), stage_summary(both)
    chart = {c.name: c for c in all_charts(both, summary, stages)}[name]
    texts = [t.get_text() for t in chart.figure.axes[0].get_xticklabels()] + _axes_texts(chart)[3]
    assert any("20990101T000000Z" in t for t in texts)


def test_step_trace_marks_the_steady_state(tmp_path: Path) -> None:
    from bench.report.charts import step_trace
    from bench.store import RESULTS_FILE, ResultsWriter, load_results

    base = {"schema_version": SCHEMA_VERSION, "timestamp": "2026-01-01T00:00:00.000Z", "run_id": "r", "case_id": "a",
            "case": "a", "model": "m", "compute_unit": "CPU_AND_GPU", "status": "ok"}  # fmt: skip
    rows = []
    for repeat in range(2):
        for step, seconds in enumerate([0.9, 0.5, 0.3, 0.3, 0.3]):  # slow first steps, then steady
            rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "unet", "step": step,
                         "metric": "latency", "value": seconds, "unit": "s"})  # fmt: skip
    rows.append({**base, "stage": "outcome", "metric": "wall_time", "value": 1.0, "unit": "s"})
    ResultsWriter(tmp_path / RESULTS_FILE).append(rows)
    results = load_results(tmp_path)
    chart = step_trace(results, case_summary(results))
    axes = chart.figure.axes[0]
    trace, steady = axes.lines
    assert list(trace.get_ydata()) == pytest.approx([900, 500, 300, 300, 300])
    assert list(steady.get_ydata()) == pytest.approx([300, 300])  # median of steps 1..4: 0.3 s
    assert "steady state" in axes.get_title()
