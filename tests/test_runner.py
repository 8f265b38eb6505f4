"""The runner with a fake pipeline in real worker processes: rows, crashes, timeouts, resume, Ctrl-C."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from bench.protocol import Event, ModelsResolved, PhaseStarted, SpansFinished, StageStarted
from bench.runner import NullProgress, Runner, run_worker
from bench.schema import EnvironmentColumns
from bench.store import RESULTS_FILE, ResultsWriter, completed_case_ids, load_results
from bench.suite.case import Case

TESTS = Path(__file__).resolve().parent
FAKE = "fake_executor:PLUGIN"
ENVIRONMENT = EnvironmentColumns(device="dev", chip="chip", os="os", host="host")


@pytest.fixture(autouse=True)
def fake_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(TESTS))


def case(model: str, **fields: Any) -> Case:
    values = {"steps": 3, "warmup": 1, "repeats": 2, "timeout": 60.0, "engine": "reference",
              "compute_unit": "REFERENCE"}  # fmt: skip
    values.update(fields)
    return Case(suite="fake", model=model, **values)


class Recording(NullProgress):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.events: list[Event] = []

    def case_started(self, index: int, c: Case) -> None:
        self.started.append(c.model)

    def case_event(self, c: Case, event: Event) -> None:
        self.events.append(event)


def test_one_good_case_rows(tmp_path: Path) -> None:
    good = case("fake-ok", quality=True)
    progress = Recording()
    outcomes = Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE, progress=progress).run([good])
    assert [o.status for o in outcomes] == ["ok"]
    frame = load_results(tmp_path)
    assert set(frame["status"]) == {"ok"}
    assert (frame["run_id"] == "run1").all() and (frame["case_id"] == good.case_id).all()
    assert (frame["device"] == "dev").all() and frame["timestamp"].notna().all()
    # labels come from the executor's model set
    assert set(frame["attention"]) == {"SPLIT_EINSUM"} and set(frame["quantization"]) == {"float16"}
    assert set(frame["resolution"]) == {64} and set(frame["batch"]) == {2}

    latency = frame[frame["metric"] == "latency"]
    cold = latency[latency["phase"] == "cold"]
    assert {"load/unet", "first_predict/unet", "load/text_encoder"} <= set(cold["stage"].astype(str))
    measured = latency[latency["phase"] == "measured"]
    assert sorted(measured[measured["stage"] == "end_to_end"]["repeat"].tolist()) == [0, 1]
    assert len(latency[(latency["phase"] == "warmup") & (latency["stage"] == "end_to_end")]) == 1
    unet = measured[measured["stage"] == "unet"]
    assert sorted(unet["step"].tolist()) == [0, 0, 1, 1, 2, 2]
    assert (latency["value"] > 0).all()

    # every span has a peak_rss row; no footprint rows off macOS
    peaks = frame[frame["metric"] == "peak_rss"]
    assert len(peaks[peaks["stage"] != "process"]) == len(latency)
    import platform

    assert (frame["metric"] == "peak_footprint").any() == (platform.system() == "Darwin")

    calls = frame[frame["metric"] == "unet_calls"]
    assert len(calls) == 3 and (calls["stage"] == "diffusion").all() and (calls["value"] == 3).all()  # 1 + 2 repeats
    assert not (frame["metric"] == "iter_per_s").any()  # derived at report time, never stored
    samples = frame[frame["metric"] == "memory_samples"]
    assert len(samples) == len(latency)  # every span says how many outside samples fell inside it
    taken = frame[frame["metric"] == "sampler_samples"]["value"].iloc[0]
    assert taken >= 1 and samples[samples["stage"] == "end_to_end"]["value"].max() <= taken
    psnr = frame[frame["metric"] == "psnr"]
    assert psnr["value"].tolist() == [42.0] and psnr["unit"].tolist() == ["dB"]
    closing = frame[frame["stage"] == "outcome"]
    assert len(closing) == 1 and closing["metric"].tolist() == ["wall_time"] and closing["value"].iloc[0] > 0
    assert (tmp_path / "images" / f"{good.case_id}.png").exists()
    # validity: 2 measured repeats is fewer than the default min_repeats (3), on every row of the case
    assert (frame["valid"] == False).all()  # noqa: E712 - a nullable boolean column
    assert frame["invalid_reason"].str.contains("2 measured repeats, fewer than min_repeats = 3").all()
    kinds = {type(e) for e in progress.events}
    assert {StageStarted, PhaseStarted, ModelsResolved, SpansFinished} <= kinds


def test_failures_cost_one_case_each(tmp_path: Path) -> None:
    cases = [
        case("fake-error"),
        case("fake-sigkill"),
        case("fake-hang", timeout=4.0),
        case("fake-exit"),
        case("fake-ok"),
    ]
    started = time.perf_counter()
    outcomes = Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE).run(cases)
    elapsed = time.perf_counter() - started
    status = {o.case.model: (o.status, o.error) for o in outcomes}
    assert status["fake-ok"] == ("ok", None)
    assert status["fake-error"][0] == "error"
    assert "PipelineError: fake pipeline failed on purpose" in status["fake-error"][1]
    assert "during unet step 1" in status["fake-error"][1]
    assert status["fake-sigkill"][0] == "error" and "SIGKILL" in status["fake-sigkill"][1]
    assert "during unet step 1" in status["fake-sigkill"][1]
    assert status["fake-hang"] == ("timeout", "timed out after 4 s during unet step 1")
    assert status["fake-exit"][0] == "error" and "exited with code 7" in status["fake-exit"][1]
    assert elapsed < 60

    frame = load_results(tmp_path)
    closing = frame[frame["stage"] == "outcome"].set_index("model", drop=False)
    assert closing.loc["fake-hang", "status"] == "timeout"
    assert closing.loc["fake-sigkill", "error"].startswith("worker killed by SIGKILL")
    # rows measured before a failure are kept, marked with the case's status
    error_rows = frame[(frame["model"] == "fake-error") & ~frame["stage"].isin(["outcome", "process"])]
    assert len(error_rows) > 0 and set(error_rows["status"]) == {"error"}
    assert set(error_rows["phase"].astype(str)) == {"cold"}
    # the process high-water mark is reported for failed cases too (not for killed ones: they cannot)
    process = frame[(frame["stage"] == "process") & (frame["metric"] == "peak_rss")]
    assert "fake-error" in set(process["model"]) and "fake-sigkill" not in set(process["model"])
    crash_log = tmp_path / "logs" / f"{cases[0].case_id}.log"  # logs are kept only when non-empty
    assert not crash_log.exists() or crash_log.stat().st_size > 0


def test_skipped_case_row(tmp_path: Path) -> None:
    skipped = case("sdxl-base-ios17", engine="coreml", compute_unit="CPU_AND_NE",
                   skip_reason="Core ML does not run on Linux")  # fmt: skip
    (outcome,) = Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE).run([skipped])
    assert outcome.status == "skipped"
    frame = load_results(tmp_path)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["status"], row["error"], row["stage"], row["engine"], row["compute_unit"]) == (
        "skipped", "Core ML does not run on Linux", "outcome", "coreml", "CPU_AND_NE")
    assert pd.isna(row["value"])


def test_resume_skips_finished_cases_and_reruns_cut_short(tmp_path: Path) -> None:
    first, second = case("fake-ok", seed=1), case("fake-ok", seed=2)
    Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE).run([first])
    # simulate a kill while the second case's rows were being written: rows without a closing row
    frame_rows = load_results(tmp_path)
    ResultsWriter(tmp_path / RESULTS_FILE).append([{"run_id": "run1", "case_id": second.case_id, "case": "x",
                                                    "stage": "unet", "metric": "latency", "value": 1.0}])  # fmt: skip
    from bench.store import drop_incomplete_cases

    assert drop_incomplete_cases(tmp_path / RESULTS_FILE) == 1
    progress = Recording()
    outcomes = Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE, progress=progress).run([first, second])
    assert [o.status for o in outcomes] == ["resumed", "ok"]
    assert progress.started == ["fake-ok"]  # only the second one ran
    frame = load_results(tmp_path)
    assert completed_case_ids(tmp_path / RESULTS_FILE) == {first.case_id, second.case_id}
    assert len(frame[frame["case_id"] == first.case_id]) == len(frame_rows)


def test_ctrl_c_kills_the_worker_and_keeps_the_file_consistent(tmp_path: Path) -> None:
    class Interrupt(Recording):
        pid: int | None = None

        def case_event(self, c: Case, event: Event) -> None:
            if c.model == "fake-hang" and isinstance(event, PhaseStarted) and event.phase == "warmup":
                time.sleep(0.5)  # let the worker reach the hang in its first warm-up repeat
                self.children = [p.pid for p in psutil.Process().children(recursive=True)]
                assert self.children
                raise KeyboardInterrupt

    progress = Interrupt()
    good, hanging = case("fake-ok"), case("fake-hang", timeout=120.0)
    with pytest.raises(KeyboardInterrupt):
        Runner(tmp_path, "run1", ENVIRONMENT, plugin=FAKE, progress=progress).run([good, hanging])
    for pid in progress.children:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert completed_case_ids(tmp_path / RESULTS_FILE) == {good.case_id}  # an interrupted case runs again
    frame = load_results(tmp_path)
    closing = frame[frame["stage"] == "outcome"].set_index("case_id")["status"]
    assert closing.to_dict() == {good.case_id: "ok", hanging.case_id: "interrupted"}


def test_run_worker_reports_bad_plugin(tmp_path: Path) -> None:
    result = run_worker(case("fake-ok"), plugin="no_such_module:Thing", log_path=tmp_path / "w.log")
    assert result.status == "error" and "cannot load plugin 'no_such_module:Thing'" in result.error


def test_peak_inside_one_gil_holding_call_is_sampled_from_outside(tmp_path: Path) -> None:
    """The worker holds the GIL through the whole allocation, after an earlier, larger one set the
    lifetime high-water mark: only the runner's samples by PID can see the vae_decoder's peak."""
    megabytes = 200
    gil = case(f"fake-gil-{megabytes}", warmup=0, repeats=1)
    for sampled in (True, False):
        (tmp_path / str(sampled)).mkdir()
        Runner(tmp_path / str(sampled), "run1", ENVIRONMENT, plugin=FAKE, sample_memory=sampled).run([gil])
    for sampled in (True, False):
        frame = load_results(tmp_path / str(sampled))
        measured = frame[frame["phase"] == "measured"]
        peak = measured[measured["metric"] == "peak_rss"].set_index("stage")["value"]
        grew = peak["vae_decoder"] - peak["tokenize"]
        if sampled:
            samples = measured[measured["metric"] == "memory_samples"].set_index("stage")["value"]
            assert samples["vae_decoder"] >= 3
            assert grew >= 0.8 * megabytes * 2**20
        else:  # what the worker sees by itself (span edges, high-water mark) misses the peak
            assert grew < 0.2 * megabytes * 2**20
