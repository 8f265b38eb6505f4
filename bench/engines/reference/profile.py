"""Per-op profile of one reference-engine predict: the Linux counterpart of Core ML's compute plan.

Time is measured around each kernel call (plus the output rounding and checks the interpreter does);
FLOPs come from the kernel's registered estimate (`Kernel.flops`, missing where none is
registered); bytes moved are the bytes of the arrays the op read and wrote, as held by this engine
(float32 in both precisions).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

BY_CHOICES: tuple[str, ...] = ("type", "op")


@dataclass(frozen=True)
class OpProfile:
    """One executed op: its time (of one run, or the median over a profile's repeats), FLOPs, bytes moved."""

    index: int
    op_type: str
    op_name: str
    family: str
    seconds: float
    flops: float | None
    bytes_moved: int


@dataclass
class ProfileResult:
    """Per-op timings of a model run; `by_op()` / `by_op_type()` give pandas tables."""

    model_path: Path
    precision: str
    ops: list[OpProfile]
    wall_seconds: float  # median wall time of a whole predict over the repeats
    repeats: int = 1

    @classmethod
    def from_runs(
        cls, model_path: Path, precision: str, runs: Sequence[Sequence[OpProfile]], walls: Sequence[float]
    ) -> ProfileResult:
        first = runs[0]
        ops = [replace(t, seconds=statistics.median(run[i].seconds for run in runs)) for i, t in enumerate(first)]
        return cls(Path(model_path), precision, ops, statistics.median(walls), len(runs))

    @property
    def total_seconds(self) -> float:
        """Sum of the per-op times (the rest of `wall_seconds` is dispatch overhead)."""
        return sum(op.seconds for op in self.ops)

    def by_op(self) -> pd.DataFrame:
        """One row per executed op, in execution order."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "index": [op.index for op in self.ops],
                "op_name": [op.op_name for op in self.ops],
                "op_type": [op.op_type for op in self.ops],
                "family": [op.family for op in self.ops],
                "seconds": [op.seconds for op in self.ops],
                "flops": pd.array([op.flops for op in self.ops], dtype="Float64"),
                "bytes_moved": [op.bytes_moved for op in self.ops],
            }
        )
        total = self.total_seconds or 1.0
        frame["share"] = frame["seconds"] / total
        frame["gflops_per_s"] = frame["flops"] / frame["seconds"].where(frame["seconds"] > 0) / 1e9
        return frame

    def by_op_type(self) -> pd.DataFrame:
        """One row per op type, most time first."""
        frame = self.by_op()
        grouped = frame.groupby(["op_type", "family"], sort=False).agg(
            count=("index", "size"),
            seconds=("seconds", "sum"),
            flops=("flops", lambda s: s.sum(min_count=1)),
            bytes_moved=("bytes_moved", "sum"),
        )
        grouped = grouped.reset_index()
        total = self.total_seconds or 1.0
        grouped["share"] = grouped["seconds"] / total
        grouped["gflops_per_s"] = grouped["flops"] / grouped["seconds"].where(grouped["seconds"] > 0) / 1e9
        return grouped.sort_values("seconds", ascending=False, ignore_index=True)

    def to_csv(self, path: str | Path, by: str = "op") -> Path:
        """Write the per-op (`by="op"`) or per-type (`by="type"`) table as CSV."""
        frame = self.by_op() if by == "op" else self.by_op_type()
        path = Path(path)
        frame.to_csv(path, index=False)
        return path

    def table(self, by: str = "type", top: int | None = 20) -> Table:
        """A rich table of the `top` most expensive op types (`by="type"`) or ops (`by="op"`)."""
        from rich.table import Table

        if by not in BY_CHOICES:
            raise ValueError(f"by must be one of {BY_CHOICES}, got {by!r}")
        title = (
            f"{self.model_path.name}: {len(self.ops)} ops, {self.wall_seconds * 1e3:.1f} ms per predict "
            f"({self.precision}, median of {self.repeats})"
        )
        table = Table(title=title)
        # Numbers never wrap; on a narrow terminal the name columns are shortened instead.
        # Fits 80 columns: numbers never wrap, long names are shortened (the CSV has them whole,
        # and the kernel family of each op type).
        if by == "type":
            frame = self.by_op_type()
            table.add_column("op type", overflow="ellipsis", no_wrap=True, min_width=8)
            table.add_column("count", justify="right", no_wrap=True)
        else:
            frame = self.by_op().sort_values("seconds", ascending=False, ignore_index=True)
            table.add_column("op", overflow="ellipsis", no_wrap=True, min_width=8)
            table.add_column("op type", overflow="ellipsis", no_wrap=True, max_width=12)
        for column in ("ms", "share", "FLOPs", "FLOP/s", "bytes"):
            table.add_column(column, justify="right", no_wrap=True)
        shown = frame if top is None else frame.head(top)
        for row in shown.itertuples(index=False):
            flops = row.flops
            cells = [
                f"{row.seconds * 1e3:.3f}",
                f"{row.share:.1%}",
                "-" if _missing(flops) else _si(float(flops)),
                "-" if _missing(row.gflops_per_s) else _si(float(row.gflops_per_s) * 1e9),
                _si(float(row.bytes_moved), "B"),
            ]
            if by == "type":
                table.add_row(row.op_type, str(row.count), *cells)
            else:
                table.add_row(row.op_name, row.op_type, *cells)
        if top is not None and len(frame) > top:
            table.caption = f"top {top} of {len(frame)} rows by time"
        return table


def _si(value: float, unit: str = "") -> str:
    """`1.23 G`, `456 k`, `12 B`: three significant digits, readable from tiny to full-size models."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{_three_digits(value / scale)} {prefix}{unit}"
    whole = f"{value:.0f}" if float(value).is_integer() else _three_digits(value)
    return f"{whole} {unit}".rstrip()


def _three_digits(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _missing(value: object) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return value is None
