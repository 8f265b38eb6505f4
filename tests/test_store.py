"""The results store: schema, crash-safe appends, resume bookkeeping and load_results typing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from bench import load_results as package_load_results
from bench.errors import ResultsError, ResultsWarning
from bench.schema import COLUMN_NAMES as COLUMNS
from bench.schema import SCHEMA_VERSION
from bench.store import (
    RESULTS_FILE,
    ResultsWriter,
    completed_case_ids,
    create_run_dir,
    drop_incomplete_cases,
    load_results,
    new_run_id,
)


def _row(case_id: str, stage: str = "unet", step: int | None = 0, value: float = 0.5, **extra):
    row = {
        "schema_version": SCHEMA_VERSION, "run_id": "r1", "case_id": case_id, "case": f"label {case_id}", "suite": "smoke", "model": "tiny",
        "engine": "reference", "compute_unit": "REFERENCE", "attention": "SPLIT_EINSUM",
        "quantization": "float16", "resolution": 64, "steps": 2, "scheduler": "euler", "guidance": 5.0,
        "batch": 2, "reduce_memory": False, "refiner": False, "strength": None, "seed": 0,
        "phase": "measured", "repeat": 1, "stage": stage, "step": step, "metric": "latency", "value": value,
        "unit": "s", "status": "ok", "error": None, "device": "x86_64", "chip": "cpu", "os": "Linux",
        "host": "h", "timestamp": "2024-01-02T03:04:05.678Z",
    }  # fmt: skip
    row.update(extra)
    return row


def _closing(case_id: str, status: str = "ok", error: str | None = None):
    return _row(case_id, stage="outcome", step=None, metric="wall_time", value=1.5, phase=None, repeat=None,
                status=status, error=error)  # fmt: skip


def test_round_trip_types(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / RESULTS_FILE)
    writer.append([_row("a", step=0), _row("a", step=1, value=0.25), _closing("a")])
    writer.append([_row("b", stage="vae_decoder", step=None, strength=0.6, reduce_memory=True), _closing("b", "error", "boom, with comma")])

    frame = load_results(tmp_path)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 5
    assert frame["schema_version"].dtype == "Int64" and (frame["schema_version"] == SCHEMA_VERSION).all()
    assert frame["step"].dtype == "Int64" and frame["step"].isna().sum() == 3
    assert frame["repeat"].dtype == "Int64"
    assert frame["value"].dtype == "float64"
    assert frame["reduce_memory"].dtype == "boolean" and frame["reduce_memory"].tolist() == [False, False, False, True, False]
    assert isinstance(frame["stage"].dtype, pd.CategoricalDtype)
    assert isinstance(frame["status"].dtype, pd.CategoricalDtype)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame.loc[4, "error"] == "boom, with comma"
    assert pd.isna(frame.loc[0, "strength"]) and frame.loc[3, "strength"] == 0.6
    assert package_load_results(tmp_path / RESULTS_FILE).equals(frame)


def test_header_written_once_and_appends_are_whole(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    ResultsWriter(path).append([_row("a"), _closing("a")])
    ResultsWriter(path).append([_row("b"), _closing("b")])  # a second writer (resume) must not repeat the header
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert sum(line.startswith("schema_version") for line in lines) == 1
    assert len(lines) == 5


def test_unknown_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bogus"):
        ResultsWriter(tmp_path / RESULTS_FILE).append([{**_row("a"), "bogus": 1}])


def test_load_many_runs_glob_and_tree(tmp_path: Path) -> None:
    for run in ("20240101T000000Z-aaaa", "20240102T000000Z-bbbb"):
        (tmp_path / run).mkdir()
        ResultsWriter(tmp_path / run / RESULTS_FILE).append([_row("a", run_id=run), {**_closing("a"), "run_id": run}])
    assert len(load_results(tmp_path)) == 4
    assert len(load_results(str(tmp_path / "2024010*"))) == 4
    assert len(load_results(str(tmp_path / "20240102*"))) == 2
    assert len(load_results([tmp_path / "20240101T000000Z-aaaa", tmp_path / "20240102T000000Z-bbbb" / RESULTS_FILE])) == 4
    assert set(load_results(tmp_path)["run_id"]) == {"20240101T000000Z-aaaa", "20240102T000000Z-bbbb"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    ResultsWriter(tmp_path / RESULTS_FILE).append([_row("a", schema_version=SCHEMA_VERSION + 1)])
    with pytest.raises(ResultsError, match=rf"schema_version {SCHEMA_VERSION + 1} is newer"):
        load_results(tmp_path)


def test_not_a_results_file(tmp_path: Path) -> None:
    (tmp_path / RESULTS_FILE).write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="missing columns"):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="no results.csv found"):
        load_results(tmp_path / "nowhere")


def test_resume_bookkeeping_drops_cut_short_case(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    writer = ResultsWriter(path)
    writer.append([_row("a"), _closing("a")])
    writer.append([_row("b"), _row("b", step=1)])  # killed before its closing row
    with open(path, "a") as handle:  # and a torn last line
        handle.write("1,r1,b,lab")
    assert completed_case_ids(path) == {"a"}
    assert drop_incomplete_cases(path) == 2  # the torn line is cut first, then the two rows of b
    frame = load_results(path)
    assert set(frame["case_id"]) == {"a"} and len(frame) == 2
    ResultsWriter(path).append([_row("b"), _closing("b")])
    assert completed_case_ids(path) == {"a", "b"}


def test_writer_cuts_torn_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    ResultsWriter(path).append([_row("a"), _closing("a")])
    with open(path, "a") as handle:
        handle.write("1,r1,zz,half a row")
    ResultsWriter(path).append([_row("b"), _closing("b")])
    assert set(load_results(path)["case_id"]) == {"a", "b"}


def test_run_dir_creation(tmp_path: Path) -> None:
    run_dir = create_run_dir(tmp_path / "deep" / "results", new_run_id())
    assert run_dir.is_dir() and run_dir.parent == tmp_path / "deep" / "results"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsError, match="is a file"):
        create_run_dir(tmp_path / "file", "r")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_leaves_nothing(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ResultsError, match="not writable"):
            create_run_dir(locked / "results", "r")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_uncreatable_output_is_refused_even_for_root() -> None:
    with pytest.raises(ResultsError, match="/proc/bench-no-such-results"):
        create_run_dir("/proc/bench-no-such-results", "r")
    assert not Path("/proc/bench-no-such-results").exists()


def test_run_ids_sort_by_time() -> None:
    first, second = new_run_id(1_700_000_000), new_run_id(1_700_000_060)
    assert first < second and first.startswith("20231114T221320Z-")


V1_HEADER = (
    "schema_version,run_id,case_id,case,suite,model,engine,compute_unit,attention,quantization,resolution,steps,"
    "scheduler,guidance,batch,reduce_memory,refiner,strength,seed,phase,repeat,stage,step,metric,value,unit,status,"
    "error,device,chip,os,host,timestamp"
)


def test_reads_schema_version_1(tmp_path: Path) -> None:
    common = "1,r0,c1,label,smoke,tiny,reference,REFERENCE,SPLIT_EINSUM,float16,64,2,euler,5.0,2,false,false,,0"
    where = "x86_64,cpu,Linux,h,2024-01-02T03:04:05.678Z"
    (tmp_path / RESULTS_FILE).write_text("\n".join([
        V1_HEADER,
        f"{common},measured,0,unet,0,latency,0.5,s,ok,,{where}",
        f"{common},measured,0,diffusion,,iter_per_s,2.0,iter/s,ok,,{where}",
        f"{common},,,case,,wall_time,3.0,s,ok,,{where}",
    ]) + "\n")  # fmt: skip
    frame = load_results(tmp_path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["valid"].isna().all() and frame["device_name"].isna().all()
    # a v1 per-repeat iter/s is never mistaken for the case figure
    assert set(frame["metric"].astype(str)) == {"latency", "repeat_iter_per_s", "wall_time"}
    assert frame["stage"].tolist() == ["unet", "diffusion", "outcome"]  # v1's closing stage `case`
    assert frame["schema_version"].tolist() == [1, 1, 1]


def _good_file(tmp_path: Path) -> Path:
    path = tmp_path / RESULTS_FILE
    ResultsWriter(path).append([_row("a", step=0), _row("a", step=1), _closing("a")])
    ResultsWriter(path).append([_row("b", step=0), _closing("b")])
    return path


def test_torn_last_line_is_never_a_row(tmp_path: Path) -> None:
    path = _good_file(tmp_path)
    text = path.read_text()
    path.write_text(text + text.splitlines()[1][:40])  # a write killed half-way: no newline
    with pytest.warns(ResultsWarning, match=r"results.csv: left out 1 torn or unparsable rows \(line 7\)"):
        frame = load_results(tmp_path)
    assert len(frame) == 5 and frame["value"].notna().all()


@pytest.mark.parametrize("damage, line, what", [
    (lambda cells: cells + ["extra"], 3, "lines with too many fields"),
    (lambda cells: cells[:10], 3, "torn or unparsable rows"),
    (lambda cells: cells[:24] + ["0.5x"] + cells[25:], 3, "torn or unparsable rows"),
    (lambda cells: cells[:24] + ["inf"] + cells[25:], 3, "torn or unparsable rows"),
    (lambda cells: cells[:22] + ["1.5"] + cells[23:], 3, "torn or unparsable rows"),  # step is an integer
    (lambda cells: cells[:-1] + ["yesterday"], 3, "torn or unparsable rows"),
])  # fmt: skip
def test_damaged_line_is_reported_by_line_and_dropped(tmp_path: Path, damage, line: int, what: str) -> None:
    path = _good_file(tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[24] == "value" and lines[0].split(",")[22] == "step"
    lines[line - 1] = ",".join(damage(lines[line - 1].split(",")))
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(ResultsWarning, match=rf"left out 1 {what} \(line {line}\)"):
        frame = load_results(tmp_path)
    assert len(frame) == 4


def test_case_without_closing_row_is_left_out_or_kept(tmp_path: Path) -> None:
    path = _good_file(tmp_path)
    ResultsWriter(path).append([_row("c", step=0), _row("c", step=1)])  # the run was killed before c closed
    with pytest.warns(ResultsWarning, match=r"left out 2 rows of cases with no closing row \(line 7, 8\)"):
        frame = load_results(tmp_path)
    assert set(frame["case_id"]) == {"a", "b"}
    assert set(load_results(tmp_path, incomplete="keep")["case_id"]) == {"a", "b", "c"}


def test_empty_or_odd_files_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    path.write_text("")
    with pytest.raises(ResultsError, match="empty"):
        load_results(path)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="not a results file"):
        load_results(path)
