"""Every derived figure, defined once: sample statistics, step times and iter/s.

The results file keeps raw samples only (one row per span per repeat); medians, spread and iter/s
are computed here, at report time, and every table, report, comparison and notebook calls these
functions, so the same case gives the same figure to the last digit wherever it is printed.

- A sample's statistics (`SampleStats`): count, median, mean, min, max, first and third quartile,
  IQR, p90 and p99. Quantiles interpolate linearly between order statistics (numpy's default
  method, also pandas' and asv's), so they match what a notebook gets from `np.quantile`.
- A denoising step's time is the sum of that step's `unet` (or `refiner`) span and its `scheduler`
  span, per repeat; iter/s is 1 / the median step time over all measured repeats of a case, which is
  how Apple publishes diffusion speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from bench.measure.recorder import STEP_STAGES

if TYPE_CHECKING:
    import pandas as pd

#: Quantiles reported for every stage, with the names they carry in tables and frames.
QUANTILES: dict[str, float] = {"q1": 0.25, "median": 0.5, "q3": 0.75, "p90": 0.90, "p99": 0.99}


@dataclass(frozen=True)
class SampleStats:
    """Summary of one sample of measurements (seconds, bytes, ...); NaN where the sample is empty."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    q1: float
    q3: float
    iqr: float
    p90: float
    p99: float

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Field names in order: the columns `describe_groups` gives."""
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def describe(values: Iterable[float]) -> SampleStats:
    """Statistics of `values`; non-finite values are not samples and are left out."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    array = np.sort(array[np.isfinite(array)])
    return _describe_sorted(array)


def _describe_sorted(array: np.ndarray) -> SampleStats:
    n = int(array.size)
    if n == 0:
        nan = math.nan
        return SampleStats(0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    q1, median, q3, p90, p99 = (float(q) for q in np.quantile(array, list(QUANTILES.values())))
    return SampleStats(
        n=n,
        median=median,
        mean=float(array.mean()),
        min=float(array[0]),
        max=float(array[-1]),
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        p90=p90,
        p99=p99,
    )


def describe_groups(frame: pd.DataFrame, by: Sequence[str], value: str = "value") -> pd.DataFrame:
    """`describe` of `frame[value]` per group of `by`, one row per group (groups in first-seen order).

    One sort of the whole frame, then each group is a contiguous slice, and the order statistics of
    every group are read off at once (`_quantiles_sorted` repeats numpy's linear rule step by step),
    so figures agree with `describe` to the last digit at a cost that stays linear in the rows.
    """
    import pandas as pd

    columns = list(SampleStats.names())
    if frame.empty:
        return pd.DataFrame(columns=[*by, *columns])
    codes = frame.groupby(list(by), sort=False, dropna=False, observed=True).ngroup().to_numpy()
    count = int(codes.max()) + 1
    values = frame[value].to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    kept_codes, kept_values = codes[finite], values[finite]
    order = np.lexsort((kept_values, kept_codes))  # by group, then by value
    sorted_codes, sorted_values = kept_codes[order], kept_values[order]
    bounds = np.searchsorted(sorted_codes, np.arange(count + 1))
    starts, sizes = bounds[:-1], np.diff(bounds)
    out: dict[str, np.ndarray] = {"n": sizes}
    present = sizes > 0
    quantiles = _quantiles_sorted(sorted_values, starts[present], sizes[present])
    for name, column in zip(QUANTILES, quantiles):
        out[name] = _spread(column, present)
    out["mean"] = _spread(_means_sorted(sorted_values, starts[present], sizes[present]), present)
    out["min"] = _spread(sorted_values[starts[present]], present)
    out["max"] = _spread(sorted_values[starts[present] + sizes[present] - 1], present)
    out["iqr"] = out["q3"] - out["q1"]
    firsts = np.unique(codes, return_index=True)[1]  # the first row of each group, in group order
    index = frame[list(by)].iloc[firsts].reset_index(drop=True)
    stats = pd.DataFrame({name: out[name] for name in columns})
    return pd.concat([index, stats], axis=1)


def _spread(present_values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Values of the non-empty groups placed into a column for all groups (NaN for empty ones)."""
    column = np.full(present.size, np.nan)
    column[present] = present_values
    return column


def _means_sorted(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mean of each slice, bit-identical to `describe`'s `array.mean()`: slices of one size are
    gathered into the rows of a matrix and reduced along the rows, which numpy sums with the same
    pairwise summation as a 1-D array (np.add.reduceat sums sequentially and differs in the last bits)."""
    means = np.empty(starts.size, dtype=np.float64)
    for size in np.unique(sizes):
        which = np.flatnonzero(sizes == size)
        means[which] = values[starts[which][:, None] + np.arange(size)].mean(axis=1)
    return means


def _quantiles_sorted(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """`QUANTILES` of many sorted slices of `values` at once, computed exactly as `np.quantile` does
    (method "linear": virtual index (n - 1) q, floor, then numpy's `_lerp`, which interpolates from
    the upper neighbour when the weight is at least 0.5), so results match `describe` bit for bit."""
    results = []
    last = starts + sizes - 1
    for q in QUANTILES.values():
        virtual = (sizes - 1) * np.float64(q)
        previous = np.floor(virtual)
        above = virtual >= sizes - 1
        gamma = virtual - previous
        low_index = np.where(above, last, starts + previous.astype(np.intp))
        high_index = np.where(above, last, low_index + 1)
        a, b = values[low_index], values[high_index]
        diff = b - a
        result = a + diff * gamma
        upper = gamma >= 0.5
        result[upper] = (b - diff * (1 - gamma))[upper]
        result[above] = values[last[above]]
        results.append(result)
    return results


def step_seconds(latency: pd.DataFrame, by: Sequence[str] = ("run_id", "case_id")) -> pd.DataFrame:
    """Seconds per denoising step: one row per (`by`..., repeat, step) with the step's `value`.

    `latency` holds latency rows; only those of step stages with a step index count. A step is the
    sum of its `unet` / `refiner` span and its `scheduler` span within the same repeat.
    """
    steps = latency[(latency["stage"].isin(STEP_STAGES) & latency["step"].notna()).to_numpy(dtype=bool)]
    keys = [*by, "repeat", "step"]
    return steps.groupby(keys, observed=True, sort=False, dropna=False)["value"].sum().reset_index()


def iter_per_s(step_values: Iterable[float]) -> float:
    """Denoising steps per second: 1 / the median step time (NaN without steps)."""
    median = describe(step_values).median
    return 1.0 / median if median > 0 else math.nan


def iter_per_s_groups(steps: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """`iter_per_s` per group of `by` from `step_seconds` output (columns `by`... and `iter_per_s`)."""
    medians = describe_groups(steps, by)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(medians["median"] > 0, 1.0 / medians["median"].to_numpy(dtype=np.float64), np.nan)
    return medians[list(by)].assign(iter_per_s=rate)


# --------------------------------------------------------------------------- comparing two samples

#: asv's significance level (`asv._stats.is_different`, p_threshold=0.002): a difference counts as
#: significant when the two-sided Mann-Whitney U p-value is below it.
SIGNIFICANCE_ALPHA = 0.002


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest p-value a Mann-Whitney U test can reach with samples of n_a and n_b values,
    as asv bounds it: 1 / C(n_a + n_b, min(n_a, n_b)) (1.0 when a sample is empty)."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return 1.0 / math.comb(n_a + n_b, min(n_a, n_b))


def enough_for_significance(n_a: int, n_b: int, alpha: float = SIGNIFICANCE_ALPHA) -> bool:
    """asv's rule: test only when the samples are large enough that the test could reject at
    `alpha` (`min_p_value < alpha`); otherwise significance cannot be decided. At asv's alpha of
    0.002 that takes 6 + 6 samples (or 5 + 7, 4 + 9, 3 + 13)."""
    return min_p_value(n_a, n_b) < alpha


def mann_whitney_p(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Mann-Whitney U p-value of `b` against `a` (scipy; exact for small tie-free samples, the normal
    approximation otherwise). `alternative="greater"` asks whether `b` tends to be larger than `a`.
    Non-finite values are not samples.

    One-sided, the smallest reachable p is exactly asv's bound `min_p_value`; two-sided it is twice
    that, so at n_a + n_b where the bound is just under alpha a two-sided test could never reject.
    """
    from scipy.stats import mannwhitneyu

    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    if np.all(x == x[0]) and np.all(y == x[0]):
        return 1.0  # identical constant samples: no difference (scipy warns and returns NaN here)
    return float(mannwhitneyu(y, x, alternative=alternative).pvalue)


@dataclass(frozen=True)
class RatioInterval:
    """A ratio of medians (candidate / baseline) with its bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float
    resamples: int


#: Bootstrap resamples for a ratio's confidence interval: at a 99% level each tail holds 25 of
#: them, enough for a stable percentile, at a few milliseconds per comparison.
BOOTSTRAP_RESAMPLES = 4999


def median_ratio_interval(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.99,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> RatioInterval:
    """median(candidate) / median(baseline) and its percentile bootstrap interval (scipy.stats.bootstrap,
    each sample resampled independently, seeded so the same data give the same interval).

    The interval is NaN when a sample has fewer than two values (nothing to resample) or when a
    baseline median is not positive.
    """
    from scipy.stats import bootstrap

    a, b = _finite(baseline), _finite(candidate)
    ratio = _ratio(describe(b).median, describe(a).median)
    if a.size < 2 or b.size < 2 or not math.isfinite(ratio):
        return RatioInterval(ratio, math.nan, math.nan, confidence, resamples)
    if np.all(a == a[0]) and np.all(b == b[0]):
        return RatioInterval(ratio, ratio, ratio, confidence, resamples)  # constant samples: no spread

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        # the same quantile rule as `describe` (numpy's linear interpolation), vectorised over resamples
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.quantile(y, 0.5, axis=axis) / np.quantile(x, 0.5, axis=axis)

    result = bootstrap(
        (a, b),
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return RatioInterval(ratio, low, high, confidence, resamples)


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return array[np.isfinite(array)]


# --------------------------------------------------------------------------- series of runs


def noise_scale(values: Sequence[float]) -> float:
    """Robust standard deviation of the noise in a series: the median absolute deviation of its
    successive differences, scaled to a normal sigma (/ 0.6745 / sqrt 2). Differences cancel level
    shifts and the median ignores outliers, so a step or a bad night does not inflate it."""
    array = _finite(values)
    if array.size < 3:
        return math.nan
    diffs = np.sort(np.diff(array))
    center = _describe_sorted(diffs).median
    deviation = _describe_sorted(np.sort(np.abs(diffs - center))).median
    return deviation / 0.6745 / math.sqrt(2.0)


# --------------------------------------------------------------------------- pytest-benchmark's stats block


def benchmark_stats(values: Sequence[float]) -> dict[str, float | int | str]:
    """The `stats` block pytest-benchmark stores for one benchmark (`pytest_benchmark.stats.Stats.fields`):
    min, max, mean, stddev, rounds, median, iqr, q1, q3, outlier counts, Tukey whiskers, ops, total.

    Medians and quartiles are `describe`'s (numpy's linear rule; pytest-benchmark's own quartile
    method differs slightly for small samples), so an export shows the figures the reports show.
    """
    array = np.sort(_finite(values))
    summary = _describe_sorted(array)
    if summary.n == 0:
        raise ValueError("no finite values to summarise")
    stddev = float(np.std(array, ddof=1)) if summary.n > 1 else 0.0
    low_fence, high_fence = summary.q1 - 1.5 * summary.iqr, summary.q3 + 1.5 * summary.iqr
    iqr_outliers = int(np.count_nonzero((array < low_fence) | (array > high_fence)))
    stddev_outliers = int(np.count_nonzero((array < summary.mean - stddev) | (array > summary.mean + stddev)))
    inside = array[(array >= low_fence) & (array <= high_fence)]
    total = float(array.sum())
    return {
        "min": summary.min,
        "max": summary.max,
        "mean": summary.mean,
        "stddev": stddev,
        "rounds": summary.n,
        "median": summary.median,
        "iqr": summary.iqr,
        "q1": summary.q1,
        "q3": summary.q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": float(inside[0]) if inside.size else summary.min,
        "hd15iqr": float(inside[-1]) if inside.size else summary.max,
        "ops": summary.n / total if total > 0 else 0.0,
        "total": total,
    }
