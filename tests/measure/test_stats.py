"""One definition of every derived figure: the stats module, the summary and the printed table agree."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bench.measure.stats import describe, describe_groups, iter_per_s, step_seconds
from bench.report.summary import case_summary, render_summary, stage_summary
from bench.schema import SCHEMA_VERSION
from bench.store import RESULTS_FILE, ResultsWriter, load_results

# Known samples: unet and scheduler seconds per (repeat, step) of two measured repeats, one warm-up.
UNET = {(0, 0): 0.40, (0, 1): 0.30, (0, 2): 0.50, (1, 0): 0.35, (1, 1): 0.45, (1, 2): 0.20}
SCHEDULER = {(0, 0): 0.02, (0, 1): 0.01, (0, 2): 0.03, (1, 0): 0.05, (1, 1): 0.01, (1, 2): 0.02}
E2E = [2.5, 2.1]


def _rows() -> list[dict]:
    base = {"schema_version": SCHEMA_VERSION, "timestamp": "2026-01-01T00:00:00.000Z", "run_id": "r", "case_id": "c", "case": "case c", "suite": "s",
            "model": "m", "engine": "reference", "compute_unit": "REFERENCE", "status": "ok", "unit": "s",
            "metric": "latency"}  # fmt: skip
    rows = [{**base, "phase": "warmup", "repeat": 0, "stage": "unet", "step": 0, "value": 9.0}]
    for (repeat, step), value in UNET.items():
        rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "unet", "step": step, "value": value})
        rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "scheduler", "step": step,
                     "value": SCHEDULER[(repeat, step)]})  # fmt: skip
    for repeat, value in enumerate(E2E):
        rows.append({**base, "phase": "measured", "repeat": repeat, "stage": "end_to_end", "value": value})
    rows.append({**base, "stage": "outcome", "metric": "wall_time", "value": 7.0})
    return rows


def test_csv_summary_and_table_agree(tmp_path: Path) -> None:
    ResultsWriter(tmp_path / RESULTS_FILE).append(_rows())

    # By hand, from the raw CSV text: a step is its unet span plus its scheduler span.
    with open(tmp_path / RESULTS_FILE, newline="") as handle:
        raw = [row for row in csv.DictReader(handle) if row["phase"] == "measured"]
    steps: dict[tuple[str, str], float] = {}
    for row in raw:
        if row["stage"] in ("unet", "scheduler"):
            key = (row["repeat"], row["step"])
            steps[key] = steps.get(key, 0.0) + float(row["value"])
    by_hand = 1.0 / statistics.median(steps.values())
    e2e_by_hand = statistics.median(float(r["value"]) for r in raw if r["stage"] == "end_to_end")
    unet_by_hand = statistics.median(float(r["value"]) for r in raw if r["stage"] == "unet")

    summary = case_summary(load_results(tmp_path)).iloc[0]
    assert summary["iter_per_s"] == by_hand  # exactly: same arithmetic, not approximately
    assert summary["end_to_end_s"] == e2e_by_hand and summary["unet_s"] == unet_by_hand
    assert summary["repeats"] == 2

    console = Console(width=200, record=True)
    render_summary(case_summary(load_results(tmp_path)), console)
    text = console.export_text()
    assert f"{by_hand:.2f}" in text and f"{e2e_by_hand:.2f}s" in text and f"{unet_by_hand * 1e3:.1f}" in text

    stages = stage_summary(load_results(tmp_path)).set_index(["phase", "stage", "metric"])
    assert stages.loc[("measured", "unet", "latency"), "median"] == unet_by_hand
    assert stages.loc[("measured", "unet", "latency"), "n"] == 6
    assert stages.loc[("warmup", "unet", "latency"), "median"] == 9.0


def test_describe_matches_numpy() -> None:
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, float("nan")]
    stats = describe(values)
    finite = np.array(values[:-1])
    assert stats.n == 6 and stats.median == np.median(finite) and stats.min == 0.1 and stats.max == 0.9
    assert stats.q1 == np.quantile(finite, 0.25) and stats.p90 == np.quantile(finite, 0.9)
    assert stats.iqr == stats.q3 - stats.q1 and stats.p99 == np.quantile(finite, 0.99)
    assert describe([]).n == 0 and np.isnan(describe([]).median)


def test_describe_groups_equals_describe_per_group() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "case": rng.choice(["a", "b", "c"], 300), "stage": rng.choice(["unet", "vae", None], 300),
        "value": rng.lognormal(size=300),
    })  # fmt: skip
    groups = describe_groups(frame, ["case", "stage"])
    assert len(groups) == frame.groupby(["case", "stage"], dropna=False).ngroups
    for record in groups.to_dict("records"):
        mask = (frame["case"] == record["case"]) & (
            frame["stage"].isna() if record["stage"] is None or record["stage"] != record["stage"]
            else frame["stage"] == record["stage"]
        )  # fmt: skip
        expected = describe(frame.loc[mask, "value"])
        assert {k: record[k] for k in expected.as_dict()} == expected.as_dict()


def test_iter_per_s_is_one_over_median_step() -> None:
    latency = pd.DataFrame({
        "run_id": "r", "case_id": "c", "repeat": [0, 0, 0, 0, 1, 1], "step": [0, 0, 1, 1, 0, 0],
        "stage": ["unet", "scheduler", "refiner", "scheduler", "unet", "scheduler"],
        "value": [0.4, 0.1, 0.2, 0.1, 0.7, 0.1],
    })  # fmt: skip
    steps = step_seconds(latency)
    assert sorted(steps["value"].round(9)) == [0.3, 0.5, 0.8]
    assert iter_per_s(steps["value"]) == pytest.approx(2.0)
    assert np.isnan(iter_per_s([]))
