"""`bench compare` from the command line: exit codes, JSON, JUnit, the CI step summary, bad input."""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_factory import run_id_at, write_run  # noqa: E402

from bench.cli import main  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    base = write_run(tmp_path, run_id_at(0), {"a": {}, "b": {}}, seed=1)
    same = write_run(tmp_path, run_id_at(1), {"a": {}, "b": {}}, seed=2)
    slow = write_run(tmp_path, run_id_at(2), {"a": {"scale": {"unet": 1.10}}, "b": {}}, seed=3)
    return base, same, slow


def test_exit_codes_and_json(runs, capsys: pytest.CaptureFixture[str]) -> None:
    base, same, slow = runs
    assert main(["compare", str(base), str(same)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["compare", str(base), str(slow), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] == 2 and data["baseline_runs"] == [base.name] and data["candidate_runs"] == [slow.name]
    assert {c["stage"] for c in data["comparisons"] if c["verdict"] == "regression"} == {"unet", "end_to_end"}
    assert main(["compare", str(base), str(slow), "--threshold", "unet=15%", "--threshold", "end_to_end=15%"]) == 0


def test_junit_markdown_and_step_summary(runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    base, _, slow = runs
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit, markdown = tmp_path / "junit.xml", tmp_path / "compare.md"
    code = main(["compare", str(base), str(slow), "--junit", str(junit), "--markdown", str(markdown)])
    assert code == 1
    text = summary.read_text()
    assert text.startswith("earlier step\n## bench compare") and "**2 regression(s)**" in text
    assert markdown.read_text() == text[len("earlier step\n"):]
    root = ET.parse(junit).getroot()
    failures = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failures] == [("bench.compare.a", "unet"),
                                                                       ("bench.compare.a", "end_to_end")]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{root}/nothing-*", "{base}"], "no results.csv found at {root}/nothing-*"),
        (["{base}", "{mixed}"], "different devices"),
        (["{base}", "{empty}"], "no measurements"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv, message) -> None:
    base = runs[0]
    mixed = write_run(tmp_path / "other", run_id_at(5), {"a": {"device": "iPhone16,2", "chip": "A17 Pro"}})
    empty = write_run(tmp_path / "empty", run_id_at(6), {})
    names = {"root": tmp_path, "base": base, "mixed": mixed, "empty": empty}
    code = main(["compare", *(a.format(**names) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message.format(**names) in err and "Traceback" not in err


def test_bad_threshold_is_a_usage_error(runs, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(runs[0]), str(runs[1]), "--threshold", "unet=3"])
    assert exit_info.value.code == 2 and "expected a percentage such as 5% or unet=3%" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(runs[0]), str(runs[1]), "--threshold", "gpu=3%"])
    assert exit_info.value.code == 2 and "unknown key 'gpu'" in capsys.readouterr().err


def test_real_runs_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs the harness really made (fake executor in real workers) compare case by case."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "fake.toml").write_text(
        '[suite]\nname = "fake"\n[defaults]\nsteps = 2\nwarmup = 1\nrepeats = 3\ntimeout = 60\n'
        '[matrix]\nmodel = ["fake-ok"]\nseed = [0, 1]\n'
    )
    for _ in range(2):
        assert main(["run", "--suite", "fake", "--no-progress", "--plugin", "fake_executor:PLUGIN"]) == 0
    first, second = sorted((tmp_path / "results").iterdir())
    capsys.readouterr()
    code = main(["compare", str(first), str(second), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == (1 if data["regressions"] else 0)
    assert data["only_baseline"] == data["only_candidate"] == []
    assert len({c["case_id"] for c in data["comparisons"]}) == 2
    unet = [c for c in data["comparisons"] if c["stage"] == "unet" and c["metric"] == "latency"]
    assert [(c["baseline_n"], c["candidate_n"]) for c in unet] == [(6, 6), (6, 6)]  # 2 steps x 3 repeats
    assert all(c["significance_decidable"] for c in unet)
