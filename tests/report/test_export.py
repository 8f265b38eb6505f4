"""Exports: pytest-benchmark JSON that pytest-benchmark's own `compare` reads, CSV that load_results
reads back, Parquet that keeps every dtype."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_factory import run_id_at, write_run  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.report.summary import stage_summary  # noqa: E402
from bench.store import load_results  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs the harness really made: the fake executor in real worker processes."""
    root = tmp_path_factory.mktemp("real")
    (root / "suites").mkdir()
    (root / "suites" / "fake.toml").write_text(
        '[suite]\nname = "fake"\n[defaults]\nsteps = 2\nwarmup = 1\nrepeats = 3\ntimeout = 60\n'
        '[matrix]\nmodel = ["fake-ok"]\nseed = [0, 1]\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "bench", "run", "--suite", "fake", "--no-progress", "--plugin",
                        "fake_executor:PLUGIN"], cwd=root, env=env, check=True, capture_output=True)  # fmt: skip
    return sorted((root / "results").iterdir())


def test_pytest_benchmark_json_has_its_storage_format(real_runs: list[Path], tmp_path: Path) -> None:
    from pytest_benchmark.stats import Stats

    out = tmp_path / "0001_bench.json"
    assert main(["export", str(real_runs[0]), "--format", "pytest-benchmark", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert {"node", "processor", "machine", "python_version", "system", "cpu"} <= set(data["machine_info"])
    assert {"id", "time", "author_time", "dirty", "project", "branch"} <= set(data["commit_info"])
    manifest = json.loads((real_runs[0] / "manifest.json").read_text())
    assert data["datetime"] == manifest["started"] and data["commit_info"]["id"] == manifest["environment"]["git"]["commit"]
    results = load_results(real_runs[0])
    measured = results[(results["phase"] == "measured") & (results["metric"] == "latency")]
    cold = results[(results["phase"] == "cold") & (results["metric"] == "latency")]
    expected = len(measured.groupby(["case_id", "stage"], observed=True)) + len(cold.groupby(["case_id", "stage"], observed=True))
    assert len(data["benchmarks"]) == expected
    for bench in data["benchmarks"]:
        assert set(bench) == {"group", "name", "fullname", "params", "param", "extra_info", "options", "stats"}
        assert set(bench["stats"]) == {*Stats.fields, "data", "iterations"}
        assert bench["stats"]["rounds"] == len(bench["stats"]["data"])
    unet = next(b for b in data["benchmarks"] if b["name"].startswith("unet["))
    case_id = unet["param"]
    values = measured[(measured["case_id"] == case_id) & (measured["stage"] == "unet")]["value"]
    assert sorted(unet["stats"]["data"]) == sorted(values.tolist()) and unet["stats"]["rounds"] == 6
    summary = stage_summary(results)
    row = summary[(summary["case_id"] == case_id) & (summary["stage"] == "unet") & (summary["phase"] == "measured")
                  & (summary["metric"] == "latency")].iloc[0]  # fmt: skip
    assert unet["stats"]["median"] == row["median"] and unet["stats"]["q3"] == row["q3"]  # the reports' figures


def test_pytest_benchmark_compare_reads_the_exports(real_runs: list[Path], tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    files = []
    for number, run in enumerate(real_runs, 1):
        out = storage / f"{number:04d}_{run.name}.json"
        assert main(["export", str(run), "--format", "pytest-benchmark", "--out", str(out)]) == 0
        files.append(str(out))
    cli = Path(sys.executable).with_name("pytest-benchmark")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "pytest_benchmark.cli"]
    outputs = {}
    for extra in ([], ["--between", "median,mean"], ["--group-by", "name", "--sort", "name"]):
        done = subprocess.run([*command, "compare", *extra, *files], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, "COLUMNS": "250"})  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert "Failed to load" not in output and "Traceback" not in output, output
        assert "unet[" in output and "end_to_end[" in output and "load/unet (cold)[" in output
        outputs[" ".join(extra)] = output
    assert "Δ" in outputs["--between median,mean"]  # the two runs side by side, with the change


def test_pytest_benchmark_export_takes_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, run_id_at(0), {"a": {}})
    write_run(tmp_path, run_id_at(1), {"a": {}})
    assert main(["export", str(tmp_path), "--format", "pytest-benchmark"]) == 2
    assert "takes one run; these results hold 2" in capsys.readouterr().err


def test_failed_cases_are_left_out_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, run_id_at(0), {"a": {}, "b": {"status": "error"}})
    assert main(["export", str(run), "--format", "pytest-benchmark"]) == 0
    captured = capsys.readouterr()
    assert {b["param"] for b in json.loads(captured.out)["benchmarks"]} == {"a"}
    assert "1 case(s) left out" in captured.err


def test_parquet_round_trips_dtypes(tmp_path: Path) -> None:
    run = write_run(tmp_path, run_id_at(0), {"a": {}, "b": {"status": "error"}}, repeats=2)
    original = load_results(run)
    out = tmp_path / "rows.parquet"
    assert main(["export", str(run), "--format", "parquet", "--out", str(out)]) == 0
    back = pd.read_parquet(out)
    assert list(back.columns) == list(original.columns)
    for name in original.columns:
        if isinstance(original[name].dtype, pd.CategoricalDtype) and original[name].isna().all():
            # no values, so Parquet has no type for the categories: still an empty categorical
            assert isinstance(back[name].dtype, pd.CategoricalDtype) and len(back[name].cat.categories) == 0, name
        else:
            assert back[name].dtype == original[name].dtype, name
    assert isinstance(back["stage"].dtype, pd.CategoricalDtype) and str(back["repeat"].dtype) == "Int64"
    assert str(back["reduce_memory"].dtype) == "boolean" and str(back["timestamp"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(back, original, check_categorical=False)
    for name in original.columns:
        assert back[name].astype("string").fillna("<NA>").tolist() == original[name].astype("string").fillna("<NA>").tolist()
    assert main(["export", str(run), "--format", "parquet", "--table", "cases", "--out", str(tmp_path / "c.parquet")]) == 0
    cases = pd.read_parquet(tmp_path / "c.parquet")
    assert cases["case_id"].tolist() == ["a", "b"] and cases["status"].tolist() == ["ok", "error"]


def test_csv_raw_reads_back_and_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "r", run_id_at(0), {"a": {}}, repeats=2)
    write_run(tmp_path / "r", run_id_at(1), {"a": {}, "b": {}}, repeats=2)
    out = tmp_path / "all.csv"
    assert main(["export", str(tmp_path / "r"), "--format", "csv", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(load_results(out), load_results(tmp_path / "r"))
    assert main(["export", str(tmp_path / "r"), "--format", "csv", "--table", "stages"]) == 0
    import io

    stages = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert {"run_id", "case_id", "case", "phase", "stage", "metric", "n", "median", "iqr", "p90", "p99"} <= set(stages.columns)
    assert len(stages) == len(stage_summary(load_results(tmp_path / "r")))


def test_parquet_needs_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, run_id_at(0), {"a": {}})
    assert main(["export", str(run), "--format", "parquet"]) == 2
    assert "--out FILE" in capsys.readouterr().err
