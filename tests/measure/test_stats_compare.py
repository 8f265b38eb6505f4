"""The statistics behind compare, history and export: asv's sample-size rule, Mann-Whitney,
the bootstrap interval of a ratio of medians, the robust noise scale, pytest-benchmark's stats block."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.measure.stats import (
    SIGNIFICANCE_ALPHA,
    benchmark_stats,
    describe,
    enough_for_significance,
    mann_whitney_p,
    median_ratio_interval,
    min_p_value,
    noise_scale,
)


def asv_can_be_significant(n_a: int, n_b: int, p_threshold: float = 0.002) -> bool:
    """asv._stats.is_different's guard, transcribed: p_min = 1 / binom(len(a) + len(b), min(len(a), len(b)))."""
    from scipy.special import binom

    return 1 / binom(n_a + n_b, min(n_a, n_b)) < p_threshold


@pytest.mark.parametrize("n_a", range(1, 16))
def test_sample_size_rule_is_asvs(n_a: int) -> None:
    for n_b in range(1, 16):
        assert enough_for_significance(n_a, n_b) == asv_can_be_significant(n_a, n_b), (n_a, n_b)


def test_sample_size_boundaries() -> None:
    assert SIGNIFICANCE_ALPHA == 0.002
    assert not enough_for_significance(5, 5) and enough_for_significance(6, 6)
    assert not enough_for_significance(5, 6) and enough_for_significance(5, 7)
    assert not enough_for_significance(1, 400) and enough_for_significance(1, 600) and min_p_value(0, 10) == 1.0


def test_mann_whitney_separates_shifted_samples_only() -> None:
    rng = np.random.default_rng(0)
    base = 1.0 + 0.01 * rng.standard_normal(12)
    assert mann_whitney_p(base, base * 1.1) < SIGNIFICANCE_ALPHA
    assert mann_whitney_p(base, 1.0 + 0.01 * rng.standard_normal(12)) > 0.05
    assert mann_whitney_p([2.0] * 6, [2.0] * 6) == 1.0
    assert math.isnan(mann_whitney_p([], [1.0]))
    assert mann_whitney_p([1.0, math.nan, 2.0, 3.0], [1.0, 2.0, 3.0, math.inf]) == pytest.approx(1.0)


def test_ratio_interval_is_seeded_and_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(1)
    base, cand = rng.lognormal(0.0, 0.05, 20), rng.lognormal(math.log(1.2), 0.05, 20)
    first = median_ratio_interval(base, cand, resamples=999, seed=3)
    assert first == median_ratio_interval(base, cand, resamples=999, seed=3)
    assert first.ratio == pytest.approx(describe(cand).median / describe(base).median)
    assert first.low < first.ratio < first.high and first.low > 1.0
    assert first.confidence == 0.99 and first.resamples == 999
    covered = 0
    for seed in range(40):
        sample = np.random.default_rng(100 + seed)
        a, b = sample.lognormal(0.0, 0.05, 15), sample.lognormal(math.log(1.2), 0.05, 15)
        interval = median_ratio_interval(a, b, resamples=999, seed=seed)
        covered += interval.low <= 1.2 <= interval.high
    assert covered >= 36  # a 99% interval; percentile intervals of medians run a little narrow at n = 15


def test_ratio_interval_without_enough_values() -> None:
    single = median_ratio_interval([1.0], [2.0, 2.1])
    assert single.ratio == pytest.approx(2.05) and math.isnan(single.low) and math.isnan(single.high)
    constant = median_ratio_interval([1.0, 1.0], [2.0, 2.0])
    assert constant.low == constant.high == 2.0
    assert math.isnan(median_ratio_interval([0.0, 0.0], [1.0, 1.0]).ratio)


def test_noise_scale_ignores_steps_and_outliers() -> None:
    rng = np.random.default_rng(2)
    noise = 0.03 * rng.standard_normal(4000)
    assert noise_scale(noise) == pytest.approx(0.03, rel=0.08)
    stepped = noise + np.where(np.arange(noise.size) >= 2000, 0.5, 0.0)
    stepped[100] += 10.0
    assert noise_scale(stepped) == pytest.approx(0.03, rel=0.08)
    assert math.isnan(noise_scale([1.0, 2.0]))


def test_benchmark_stats_agrees_with_pytest_benchmark() -> None:
    from pytest_benchmark.stats import Stats

    values = [0.11, 0.12, 0.10, 0.13, 0.5, 0.12, 0.118, 0.121, 0.119]
    ours = benchmark_stats(values)
    theirs = Stats()
    for value in values:
        theirs.update(value)
    assert tuple(ours) == Stats.fields
    for name in ("min", "max", "mean", "stddev", "rounds", "median", "stddev_outliers", "total", "ops"):
        assert ours[name] == pytest.approx(getattr(theirs, name)), name
    q1, q3 = np.quantile(values, [0.25, 0.75])  # quartiles are describe()'s (numpy's), not pytest-benchmark's
    assert ours["q1"] == pytest.approx(q1) and ours["q3"] == pytest.approx(q3)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    inside = [v for v in values if low <= v <= high]
    assert ours["iqr_outliers"] == len(values) - len(inside) == 4
    assert ours["ld15iqr"] == min(inside) and ours["hd15iqr"] == max(inside)
    with pytest.raises(ValueError):
        benchmark_stats([math.nan])


def test_one_sided_test_reaches_asvs_bound_exactly() -> None:
    base, cand = [1.0, 1.01, 1.02, 1.03, 1.04, 1.05], [1.5, 1.51, 1.52, 1.53, 1.54, 1.55]
    assert min_p_value(6, 6) < SIGNIFICANCE_ALPHA < 2 * min_p_value(6, 6)
    assert mann_whitney_p(base, cand, "greater") == pytest.approx(min_p_value(6, 6))
    assert mann_whitney_p(base, cand) == pytest.approx(2 * min_p_value(6, 6))
    assert mann_whitney_p(cand, base, "less") == pytest.approx(min_p_value(6, 6))


def test_describe_groups_matches_describe_bit_for_bit() -> None:
    import pandas as pd

    from bench.measure.stats import SampleStats, describe_groups

    rng = np.random.default_rng(5)
    sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 16, 20, 33, 129, 300, 1000]
    groups, values = [], []
    for g, size in enumerate(sizes):
        groups += [f"g{g}"] * (size + 2)
        sample = list(rng.lognormal(0.0, 1.0, size)) + [math.nan, math.inf if g % 2 else -math.inf]
        values += sample
    order = rng.permutation(len(values))
    frame = pd.DataFrame({"group": np.array(groups)[order], "other": "x", "value": np.array(values)[order]})
    frame.loc[frame.index[:3], "value"] = 2.5  # ties
    table = describe_groups(frame, ["group", "other"])
    assert table["group"].tolist() == list(dict.fromkeys(frame["group"]))  # first-seen order
    for record in table.to_dict("records"):
        expected = describe(frame.loc[frame["group"] == record["group"], "value"]).as_dict()
        for name in SampleStats.names():
            got, want = record[name], expected[name]
            assert (got == want) or (math.isnan(got) and math.isnan(want)), (record["group"], name, got, want)
