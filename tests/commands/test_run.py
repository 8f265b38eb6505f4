"""`bench run` end to end with a fake pipeline in real workers; bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.store import RESULTS_FILE, load_results

TESTS = Path(__file__).resolve().parent.parent
FAKE = ["--plugin", "fake_executor:PLUGIN"]

FAKE_SUITE = """
[suite]
name = "fake"
description = "fake pipeline"
[defaults]
steps = 2
warmup = 1
repeats = 2
timeout = 60
[matrix]
model = {models}
compute_unit = ["CPU_AND_NE", "ALL"]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("COLUMNS", "200")  # rich: no wrapping inside table cells
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    write_suite(tmp_path, '["fake-ok"]')
    return tmp_path


def write_suite(root: Path, models: str, name: str = "fake", extra: str = "") -> None:
    (root / "suites" / f"{name}.toml").write_text(FAKE_SUITE.format(models=models) + extra)


def run_dirs(root: Path) -> list[Path]:
    results = root / "results"
    return sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []


def test_run_writes_results_manifest_and_summary(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--suite", "fake", "--no-progress", *FAKE])
    out = capsys.readouterr().out
    assert code == 0, out
    (run_dir,) = run_dirs(workdir)
    frame = load_results(run_dir / RESULTS_FILE)
    assert set(frame["status"]) == {"ok"} and set(frame["suite"]) == {"fake"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["run_id"] == run_dir.name and manifest["suite"]["name"] == "fake"
    assert manifest["finished"] and manifest["status_counts"] == {"ok": 1}
    assert manifest["environment"]["machine"]["chip"] and manifest["power"]["start"] and manifest["power"]["end"]
    assert manifest["models"] == {"fake-ok": {"id": "fake-ok", "role": "measured", "quality_baseline": None, "sha256": {}}}
    assert len(manifest["cases"]) == 1
    # the summary table: case, status, medians, iter/s, peak memory
    for text in ("fake-ok", "ok", "iter/s", "peak", "RSS", "unet/step", "end-to-end", "median"):
        assert text in out
    assert f"results: results/{run_dir.name}/results.csv" in out


def test_failed_case_gives_exit_1_and_other_cases_survive(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_suite(workdir, '["fake-error", "fake-ok"]')
    assert main(["run", "-s", "fake", "--no-progress", "--output", "out", *FAKE]) == 1
    (run_dir,) = sorted((workdir / "out").iterdir())
    closing = load_results(run_dir).query("stage == 'outcome'")
    assert dict(zip(closing["model"], closing["status"])) == {"fake-error": "error", "fake-ok": "ok"}
    assert "PipelineError" in capsys.readouterr().out


def test_resume_runs_only_unfinished_cases(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_suite(workdir, '["fake-ok", "fake-alloc-8"]')
    assert main(["run", "-s", "fake", "--no-progress", *FAKE]) == 0
    (run_dir,) = run_dirs(workdir)
    results = run_dir / RESULTS_FILE
    lines = results.read_text().splitlines(keepends=True)
    first_case = [line for line in lines if "fake-ok" in line or line.startswith("schema_version")]
    second_rows = [line for line in lines if "fake-alloc-8" in line]
    results.write_text("".join(first_case) + "".join(second_rows[:5]))  # killed while writing case 2
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 cases already complete" in out
    assert "[2/2] ok fake-alloc-8" in out and "[1/2]" not in out
    frame = load_results(results)
    closing = frame.query("stage == 'outcome'")
    assert sorted(closing["model"]) == ["fake-alloc-8", "fake-ok"]
    assert len(frame.query("model == 'fake-ok'")) == len(first_case) - 1
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1


def test_dry_run_prints_cases_and_writes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_suite(workdir, '["fake-ok", "fake-error"]')
    assert main(["run", "-s", "fake", "--dry-run", "-k", "not error", *FAKE]) == 0
    out = capsys.readouterr().out
    assert "fake-ok" in out and "fake-error" not in out and "collapsed from CPU_AND_NE, ALL" in out
    assert not (workdir / "results").exists()


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    ("suite_text", "args", "expected"),
    [
        (None, ["-s", "nope"], "unknown suite 'nope'; known suites: attention, ci, fake"),
        ("[matrix]\nmodel = ['m']\nbogus = [1]\n", ["-s", "bad"], "bad.toml: unknown key matrix.bogus"),
        ("[defaults]\nsteps = 'x'\n[matrix]\nmodel = ['m']\n", ["-s", "bad"], "bad.toml: defaults.steps must be an integer in [1, 1000], got 'x'"),
        ("[matrix]\nmodel = []\n", ["-s", "bad"], "bad.toml: matrix.model is empty"),
        ("[suite]\nname = 'bad'\n", ["-s", "bad"], "bad.toml: [matrix] is empty"),
        (None, ["-s", "fake", "-k", "ok and"], "bad -k expression 'ok and'"),
        (None, ["-s", "fake", "-k", "nothing-matches"], "no case of suite 'fake'"),
        (None, ["-s", "fake", "--shard", "3/2"], "bad --shard '3/2'"),
        (None, ["-s", "fake", "--output", "/proc/bench-cannot-write"], "/proc/bench-cannot-write"),
        (None, ["--resume", "results/none"], "cannot resume results/none: no manifest.json"),
        (None, ["--resume", "results/none", "-s", "fake"], "--resume reruns the cases stored in results/none; drop --suite"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], suite_text: str | None, args: list[str], expected: str
) -> None:
    if suite_text is not None:
        (workdir / "suites" / "bad.toml").write_text(suite_text)
    assert main(["run", "--no-progress", *args, *FAKE]) == 2
    assert expected in _one_line_error(capsys)
    assert not (workdir / "results").exists() or not any((workdir / "results").iterdir())


def test_absent_model_stops_before_running(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_suite(workdir, '["fake-ok", "fake-missing"]')
    assert main(["run", "-s", "fake", "--no-progress", *FAKE]) == 2
    error = _one_line_error(capsys)
    assert "fake-missing" in error and "bench models fetch fake-missing" in error
    assert not (workdir / "results").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_results_folder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = workdir / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(["run", "-s", "fake", "--no-progress", "-o", str(locked / "r"), *FAKE]) == 2
        assert "not writable" in _one_line_error(capsys)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_skipped_coreml_cases_are_recorded_with_reason(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import platform

    if platform.system() == "Darwin":
        pytest.skip("Core ML runs here")
    text = FAKE_SUITE.format(models='["fake-missing"]')  # skipped cases need no model
    text = text.replace('description = "fake pipeline"', 'description = "fake pipeline"\nreference_fallback = false')
    (workdir / "suites" / "fake.toml").write_text(text.replace("steps = 2", 'steps = 2\nengine = "coreml"'))
    assert main(["run", "-s", "fake", "--no-progress", *FAKE]) == 0
    (run_dir,) = run_dirs(workdir)
    frame = load_results(run_dir)
    assert set(frame["status"]) == {"skipped"} and len(frame) == 2
    assert set(frame["compute_unit"]) == {"CPU_AND_NE", "ALL"} and set(frame["engine"]) == {"coreml"}
    assert all("reference_fallback = false" in e for e in frame["error"])


def test_default_suite_is_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)  # no suites/ here: the checkout's suites are used
    assert main(["run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out and "tiny-split-einsum-pal4" in out and "tiny-original-fp16" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_smoke_case_end_to_end_on_a_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The real thing: zoo, reference engine, SDXL pipeline, in a worker, through the CLI."""
    from bench.models.testing import tiny_models_dir

    monkeypatch.setenv("BENCH_MODELS_DIR", str(tiny_models_dir()))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--suite", "smoke", "-k", "pal4", "--repeats", "1", "--no-progress"]) == 0, capsys.readouterr()
    (run_dir,) = (tmp_path / "results").iterdir()
    frame = load_results(run_dir)
    assert set(frame["status"]) == {"ok"}
    assert set(frame["model"]) == {"tiny-split-einsum-pal4"}
    assert set(frame["engine"]) == {"reference"} and set(frame["compute_unit"]) == {"REFERENCE"}
    assert set(frame["attention"]) == {"SPLIT_EINSUM"} and set(frame["batch"]) == {2}
    latency = frame[frame["metric"] == "latency"]
    stages = set(latency["stage"].astype(str))
    assert {"load/unet", "first_predict/unet", "tokenize", "text_encoder", "text_encoder_2", "diffusion", "unet",
            "scheduler", "vae_decoder", "end_to_end"} <= stages
    measured = latency[latency["phase"] == "measured"]
    assert sorted(measured[measured["stage"] == "unet"]["step"].tolist()) == [0, 1]
    e2e = measured[measured["stage"] == "end_to_end"]["value"].iloc[0]
    parts = measured[measured["stage"].isin(["text_encoder", "text_encoder_2", "diffusion", "vae_decoder"])]["value"].sum()
    assert parts <= e2e  # the stages sit inside end_to_end
    psnr = frame[frame["metric"] == "psnr"]
    assert len(psnr) == 1 and psnr["unit"].iloc[0] == "dB" and 0 < psnr["value"].iloc[0] < 100
    assert (frame[frame["metric"] == "iter_per_s"]["value"] > 0).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["models"]["tiny-split-einsum-pal4"]["sha256"]["unet"]
    assert manifest["models"]["tiny-split-einsum-pal4"]["quality_baseline"] == "tiny-split-einsum-fp16"
    assert (run_dir / "images").is_dir() and len(list((run_dir / "images").iterdir())) == 1


def test_absent_real_model_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BENCH_MODELS_DIR", str(tmp_path / "empty-models"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "real.toml").write_text(
        '[defaults]\nengine = "reference"\n[matrix]\nmodel = ["tiny-split-einsum-pal4", "sdxl-base-macos"]\n'
    )
    assert main(["run", "-s", "real", "--no-progress"]) == 2
    error = _one_line_error(capsys)
    assert "sdxl-base-macos" in error and "bench models fetch sdxl-base-macos" in error
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "empty-models" / "tiny").exists()  # nothing was generated before the refusal


def test_resume_of_a_v1_run_is_refused_and_changes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--suite", "fake", "--no-progress", *FAKE]) == 0
    (run_dir,) = run_dirs(workdir)
    results = run_dir / RESULTS_FILE
    lines = results.read_text().splitlines()
    v1 = [lines[0].replace(",valid,invalid_reason", "").replace(",device_name", "")] + lines[1:]
    results.write_text("\n".join(v1) + "\n")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not resumed" in err and str(results) in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("tamper", ["newer_row", "short_row", "bad_manifest", "bad_case", "bad_value", "not_object"])
def test_resume_refuses_what_it_cannot_resume_safely(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                      tamper: str) -> None:  # fmt: skip
    assert main(["run", "--suite", "fake", "--no-progress", *FAKE]) == 0
    (run_dir,) = run_dirs(workdir)
    results, manifest = run_dir / RESULTS_FILE, run_dir / "manifest.json"
    lines = results.read_text().splitlines()
    if tamper == "newer_row":
        lines.insert(2, "99" + lines[2][1:])
        results.write_text("\n".join(lines) + "\n")
    elif tamper == "short_row":
        lines.insert(2, lines[2][:30])
        results.write_text("\n".join(lines) + "\n")
    elif tamper == "bad_manifest":
        manifest.write_text(manifest.read_text()[:-20])
    elif tamper == "bad_case":
        data = json.loads(manifest.read_text())
        data["cases"][0]["unknown"] = 1
        data["cases"][0].pop("model")
        manifest.write_text(json.dumps(data))
    elif tamper == "bad_value":
        data = json.loads(manifest.read_text())
        data["cases"][0]["steps"] = {"nested": [1, 2]}
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text("[1, 2, 3]")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume" in err, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_threads_option_reaches_the_workers_and_the_manifest(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_NUM_THREADS", raising=False)  # restored after the test: --threads sets it
    code = main(["run", "--suite", "fake", "--no-progress", "--threads", "1", *FAKE])
    assert code == 0, capsys.readouterr().out
    (run_dir,) = run_dirs(workdir)
    plan = json.loads((run_dir / "manifest.json").read_text())["threads"]
    assert plan["threads"] == 1 and plan["source"] == "BENCH_NUM_THREADS" and plan["affinity_cpus"] >= 1
    assert os.environ["BENCH_NUM_THREADS"] == "1"  # what the workers inherit
