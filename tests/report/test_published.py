"""Published SDXL numbers: the canonical rows, and the comparison table beside this machine's."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from bench.report.published import published_sdxl, render_published_comparison


def test_ios17_table_rows() -> None:
    rows = published_sdxl(768, "SPLIT_EINSUM", "CPU_AND_NE").set_index("device")
    assert rows.loc["iPhone 15 Pro Max", "end_to_end_s"] == 31 and rows.loc["iPhone 15 Pro Max", "iter_per_s"] == 0.85
    assert rows.loc["iPad Pro (M2)", "iter_per_s"] == 0.98
    assert bool(rows.loc["iPhone 12 Pro", "reduce_memory"]) and not bool(rows.loc["iPad Pro (M1)", "reduce_memory"])


def test_macos_table_skips_superseded_drafts() -> None:
    rows = published_sdxl(1024, "ORIGINAL", "CPU_AND_GPU").set_index("device")
    assert rows.loc["Mac Studio (M2 Ultra)", "end_to_end_s"] == 20  # not the 47 s draft
    assert len(rows) == 4


def test_no_rows_for_unpublished_configuration() -> None:
    assert published_sdxl(1024, "ORIGINAL", "CPU_AND_NE").empty


def test_comparison_table() -> None:
    summary = pd.DataFrame([{
        "model": "sdxl-base-ios17", "status": "ok", "resolution": 768, "attention": "SPLIT_EINSUM",
        "compute_unit": "CPU_AND_NE", "chip": "Apple M2", "end_to_end_s": 29.5, "iter_per_s": 0.91,
    }, {
        "model": "tiny-original-fp16", "status": "ok", "resolution": 64, "attention": "ORIGINAL",
        "compute_unit": "REFERENCE", "chip": "cpu", "end_to_end_s": 0.1, "iter_per_s": 50.0,
    }])  # fmt: skip
    console = Console(width=160, record=True)
    render_published_comparison(summary, console)
    text = console.export_text()
    assert "SDXL 768x768 SPLIT_EINSUM CPU_AND_NE" in text
    assert "Apple M2" in text and "29.50s" in text and "iPhone 15 Pro Max" in text and "31.00s" in text
    assert "reduceMemory" in text and "tiny-original" not in text
