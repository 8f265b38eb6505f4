"""`bench report` and `bench published` on real results: formats, files, and bad input as one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.schema import COLUMN_NAMES as COLUMNS
from bench.store import RESULTS_FILE
from tests.report.example_data import EXAMPLE_RESULTS


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_term_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(EXAMPLE_RESULTS), "--against", "published"]) == 0
    out = capsys.readouterr().out
    assert "Cases" in out and "tiny-split-einsum-mbp" in out and "Stages" in out and "vae_decoder" in out
    assert out.count("unpublished") == 8 and "no published figure" in out  # unmatched cases stay, and say so


def test_markdown_report_with_charts(tmp_path: Path) -> None:
    assert main(["report", str(EXAMPLE_RESULTS), "--format", "md", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| # | case |" in text and "![Per-stage latency" in text
    for name in ("stage_breakdown", "iter_per_s_heatmap", "latency_vs_memory", "step_trace", "load_by_part"):
        assert (tmp_path / "charts" / f"{name}.png").is_file() and (tmp_path / "charts" / f"{name}.svg").is_file()
        assert f"charts/{name}.png" in text


def test_markdown_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(EXAMPLE_RESULTS), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# Benchmark report: 20261203T202621Z-c9d4")


def test_missing_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no results.csv found" in _one_line_error(capsys)


def test_empty_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / RESULTS_FILE).write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 2
    assert "empty run" in _one_line_error(capsys)


def test_other_schema_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / RESULTS_FILE).write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 2
    assert str(tmp_path / RESULTS_FILE) in _one_line_error(capsys)


def _with_value(tmp_path: Path, text: str) -> Path:
    """A copy of the example run whose first measured end-to-end value reads `text`."""
    import shutil

    run = next(EXAMPLE_RESULTS.iterdir())
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    lines = (copy / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if ",measured,0,end_to_end,," in line)
    cells = lines[index].split(",")
    cells[COLUMNS.index("value")] = text
    lines[index] = ",".join(cells)
    (copy / RESULTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copy


@pytest.mark.parametrize("text", ["inf", "nan", "-inf", "1.5e", "fast"])
def test_non_finite_or_unparsable_value_is_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    run = _with_value(tmp_path, text)
    assert main(["report", str(run)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bench: warning:")]
    assert len(warnings) == 1
    assert f"{run / RESULTS_FILE}: left out 1 torn or unparsable rows (line " in warnings[0]


def test_published_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["published", "--model", "sdxl"]) == 0
    out = capsys.readouterr().out
    assert "SDXL iOS table" in out and "SDXL macOS table" in out and "iPhone 12 Pro*" in out
    assert "Sep 2023" in out and "SUPERSEDED" not in out and "REPEAT" not in out and "47.00s" not in out
    assert main(["published", "--model", "sdxl", "--all"]) == 0
    out = capsys.readouterr().out
    assert "[SUPERSEDED]" in out and "[REPEAT]" in out and "47.00s" in out


def test_published_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["published", "--device", "iPhone 15", "--metric", "iter_per_s"]) == 0
    out = capsys.readouterr().out
    assert "iPhone 15 Pro Max" in out and "0.85" in out and "end-to-end" not in out and "31.00s" not in out
    assert main(["published", "--model", "SD 1.5", "--device", "M2"]) == 0
    assert "Mac (M2 24 GB)" in capsys.readouterr().out


def test_published_no_match_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["published", "--device", "Pixel"]) == 2
    assert "no published figure matches --device 'Pixel'" in _one_line_error(capsys)


@pytest.mark.parametrize("flags", [[], ["--all"], ["--all", "--metric", "end_to_end"]])
def test_published_every_table(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["published", *flags]) == 0
    out = capsys.readouterr().out
    assert "fast-mac-diffusers" in out and "not stated" in out and "undated" in out  # the Diffusers-app table
    assert ("[HISTORICAL]" in out) == ("--all" in flags)
