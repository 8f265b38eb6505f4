"""Report tables: validity shown when the results carry it, failed cases keep their row and error."""

from __future__ import annotations

import pandas as pd

from bench.report.tables import case_table, render_html, render_markdown


def test_validity_and_errors() -> None:
    summary = pd.DataFrame([
        {"run_id": "r", "case_id": "a", "case": "ok case", "status": "ok", "valid": True, "invalid_reason": None,
         "end_to_end_s": 2.0, "iter_per_s": 1.5, "psnr_db": float("nan")},
        {"run_id": "r", "case_id": "b", "case": "hot case", "status": "ok", "valid": False,
         "invalid_reason": "thermal throttling at end", "end_to_end_s": 3.0, "iter_per_s": 1.0, "psnr_db": 31.25},
        {"run_id": "r", "case_id": "c", "case": "broken | case", "status": "error", "error": "PipelineError: boom",
         "valid": pd.NA, "end_to_end_s": float("nan"), "iter_per_s": float("nan"), "psnr_db": float("nan")},
    ])  # fmt: skip
    table = case_table(summary)
    assert "run" not in table.headers  # one run: no run column
    validity = [row[table.headers.index("validity")] for row in table.rows]
    assert validity == ["valid", "invalid: thermal throttling at end", "-"]
    assert [row[table.headers.index("PSNR dB")] for row in table.rows] == ["-", "31.2", "-"]
    assert table.notes == ["#3 error: PipelineError: boom"]
    markdown = render_markdown(table)
    assert "broken \\| case" in markdown and markdown.count("\n|") == 5
    assert "<td>broken | case</td>" in render_html(table)


def test_run_column_with_several_runs() -> None:
    summary = pd.DataFrame([{"run_id": run, "case_id": "a", "case": "c", "status": "ok"} for run in ("r1", "r2")])
    table = case_table(summary)
    assert table.headers[2] == "run" and [row[2] for row in table.rows] == ["r1", "r2"]
