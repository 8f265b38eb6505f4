"""Published SDXL device numbers beside this machine's: Apple's iOS 17 and macOS tables.

The CSV (`bench/published/published_numbers.csv`) carries each number with its source. Only the
canonical rows are compared: SDXL base 1.0 end-to-end latency and diffusion speed from Apple's
ml-stable-diffusion README (the Hugging Face blog repeats the macOS table; superseded drafts are kept
in the CSV for the record and skipped here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

PUBLISHED_CSV = Path(__file__).resolve().parent.parent / "published" / "published_numbers.csv"


def load_published(path: Path = PUBLISHED_CSV) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def published_sdxl(resolution: int, attention: str, compute_unit: str, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Devices with Apple's published end-to-end seconds and iter/s for this configuration."""
    import pandas as pd

    frame = load_published() if published is None else published
    rows = frame[
        frame["model_version"].str.startswith("SDXL base 1.0")
        & frame["metric"].isin(["end_to_end_latency", "diffusion_speed"])
        & (frame["compute_unit"] == compute_unit)
        & (frame["attention"] == attention)
        & frame["resolution"].str.match(rf"^{resolution}x{resolution}\b")
        & frame["source_file"].str.contains("ml-stable-diffusion:README.md", regex=False)
        & ~frame["notes"].str.contains("SUPERSEDED", case=False)
    ]
    if rows.empty:
        return pd.DataFrame(columns=["device", "end_to_end_s", "iter_per_s", "reduce_memory", "source"])
    records: dict[str, dict[str, Any]] = {}
    for row in rows.to_dict("records"):
        record = records.setdefault(row["device"], {"device": row["device"], "end_to_end_s": None,
                                                    "iter_per_s": None, "source": row["source_url"]})  # fmt: skip
        value = float(re.sub(r"[^0-9.]", "", row["value"]))
        record["end_to_end_s" if row["metric"] == "end_to_end_latency" else "iter_per_s"] = value
        # Apple marks devices that needed reduceMemory with "*" (it adds significant overhead).
        record["reduce_memory"] = "reduceMemory enabled" in row["notes"]
    return pd.DataFrame(list(records.values()))


def render_published_comparison(summary: pd.DataFrame, console: Console) -> None:
    """For each measured SDXL configuration Apple published, one table: this machine, then theirs."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from bench.report.summary import format_seconds

    if summary.empty:
        return
    published = load_published()
    measured = summary[(summary["status"] == "ok") & summary["model"].astype(str).str.startswith("sdxl")]
    keys = measured[["resolution", "attention", "compute_unit"]].dropna().drop_duplicates()
    for resolution, attention, compute_unit in keys.itertuples(index=False):
        theirs = published_sdxl(int(resolution), str(attention), str(compute_unit), published)
        if theirs.empty:
            continue
        table = Table(title=f"vs published: SDXL {resolution}x{resolution} {attention} {compute_unit}",
                      title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
        table.add_column("device")
        table.add_column("end-to-end", justify="right")
        table.add_column("iter/s", justify="right")
        table.add_column("source")
        mine = measured[(measured["resolution"] == resolution) & (measured["attention"] == attention)
                        & (measured["compute_unit"] == compute_unit)]  # fmt: skip
        for record in mine.to_dict("records"):
            ips = record["iter_per_s"]
            table.add_row(f"[bold]{escape(str(record['chip']))}[/bold] (this run: {escape(str(record['model']))})",
                          format_seconds(record["end_to_end_s"]), f"{ips:.2f}" if ips == ips and ips is not None else "-",
                          "measured")  # fmt: skip
        for record in theirs.to_dict("records"):
            star = "*" if record.get("reduce_memory") else ""
            ips = record["iter_per_s"]
            table.add_row(escape(record["device"]) + star, format_seconds(record["end_to_end_s"]),
                          "-" if ips is None else f"{ips:.2f}", "Apple, ml-stable-diffusion README")  # fmt: skip
        console.print(table)
        if theirs.get("reduce_memory", False).any():
            console.print("  * Apple ran these with reduceMemory (adds significant end-to-end overhead)")
