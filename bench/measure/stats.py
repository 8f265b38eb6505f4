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

    One sort of the whole frame, then each group is a contiguous slice: the same arithmetic as
    `describe` (so figures agree to the last digit) at a cost that stays linear in the rows.
    """
    import pandas as pd

    columns = list(SampleStats.names())
    if frame.empty:
        return pd.DataFrame(columns=[*by, *columns])
    codes = frame.groupby(list(by), sort=False, dropna=False, observed=True).ngroup().to_numpy()
    count = int(codes.max()) + 1
    values = frame[value].to_numpy(dtype=np.float64, na_value=np.nan)
    order = np.lexsort((values, codes))  # by group, then by value (NaN last within a group)
    sorted_codes, sorted_values = codes[order], values[order]
    bounds = np.searchsorted(sorted_codes, np.arange(count + 1))
    records = []
    for group in range(count):
        sample = sorted_values[bounds[group] : bounds[group + 1]]
        records.append(_describe_sorted(sample[np.isfinite(sample)]).as_dict())
    firsts = np.unique(codes, return_index=True)[1]  # the first row of each group, in group order
    index = frame[list(by)].iloc[firsts].reset_index(drop=True)
    out = pd.DataFrame.from_records(records, columns=columns)
    return pd.concat([index, out], axis=1)


def step_seconds(latency: pd.DataFrame, by: Sequence[str] = ("run_id", "case_id")) -> pd.DataFrame:
    """Seconds per denoising step: one row per (`by`..., repeat, step) with the step's `value`.

    `latency` holds latency rows; only those of step stages with a step index count. A step is the
    sum of its `unet` / `refiner` span and its `scheduler` span within the same repeat.
    """
    stage = latency["stage"].astype("string")
    steps = latency[stage.isin(STEP_STAGES) & latency["step"].notna()]
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
