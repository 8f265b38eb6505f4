"""History: series in run order, change points found where they are, and not in noise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_factory import run_id_at, write_run  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.report.history import build_series, change_indices, find_changes, run_start_times  # noqa: E402
from bench.store import load_results  # noqa: E402

NIGHTS, STEP_NIGHT, NOISE = 30, 15, 0.03


def nights_with_step(seed: int, step: float = 1.10) -> np.ndarray:
    """30 nightly medians with 3% Gaussian noise and a lasting `step` from night 15 on."""
    rng = np.random.default_rng(seed)
    return np.where(np.arange(NIGHTS) >= STEP_NIGHT, step, 1.0) * (1.0 + NOISE * rng.standard_normal(NIGHTS))


def test_planted_step_is_found_at_its_night() -> None:
    assert change_indices(nights_with_step(0)) == [STEP_NIGHT]
    assert change_indices(nights_with_step(0, step=1 / 1.10)) == [STEP_NIGHT]  # an improvement too


def test_noise_alone_has_no_change() -> None:
    assert change_indices(nights_with_step(0, step=1.0)) == []


def test_over_many_seeds_it_is_not_luck() -> None:
    """Calibration (module docstring): ~84% exact, ~97% within a night, ~1% false alarms."""
    found = [change_indices(nights_with_step(seed)) for seed in range(20)]
    exact = sum(f == [STEP_NIGHT] for f in found)
    near = sum(len(f) == 1 and abs(f[0] - STEP_NIGHT) <= 1 for f in found)
    false_alarms = sum(bool(change_indices(nights_with_step(1000 + seed, step=1.0))) for seed in range(20))
    assert exact >= 16 and near >= 18 and false_alarms <= 1, (exact, near, false_alarms)


def test_lone_outliers_are_ignored() -> None:
    alarms = 0
    for seed in range(20):
        values = nights_with_step(2000 + seed, step=1.0)
        values[7 + seed % 15] *= 1.5  # one bad night
        alarms += bool(change_indices(values))
    assert alarms <= 1
    values = nights_with_step(0, step=1.0)
    values[10:13] *= 1.5  # three bad nights in a row are a (short) change, not an outlier
    assert change_indices(values) == [10, 13]


def test_constant_and_short_series() -> None:
    assert change_indices([1.0] * 30) == []
    assert change_indices([1.0] * 10 + [1.2] * 10) == [10]
    assert change_indices([1.0, 2.0, 1.0, 2.0, 1.0]) == []  # shorter than two segments


def test_series_follow_run_start_times(tmp_path: Path) -> None:
    """Runs are ordered by the manifest's start time, not by folder name; failed runs are left out."""
    ids = [f"run-{name}" for name in "zyxwvutsrq"]  # names sort opposite to their start times
    for night, run_id in enumerate(ids):
        write_run(tmp_path, run_id, {"a": {"scale": {"unet": 1.2 if night >= 5 else 1.0},
                                           "status": "error" if night == 2 else "ok"}},
                  seed=night, started=f"2026-02-{night + 1:02d}T02:00:00.000Z", repeats=2, steps=2)  # fmt: skip
    results = load_results(tmp_path)
    starts = run_start_times(tmp_path, results)
    found = build_series(results, starts, metrics=("latency",), stages=["unet"])
    (series,) = found.series
    assert found.left_out == 1
    assert series.run_ids == tuple(i for n, i in enumerate(ids) if n != 2)
    (change,) = find_changes(series)
    assert change.run_id == "run-u" and change.previous_run_id == "run-v" and change.direction == "up"
    assert change.ratio == pytest.approx(1.2, abs=0.03)
    assert change.median_before == pytest.approx(0.1, rel=0.03) and change.median_after == pytest.approx(0.12, rel=0.03)


def test_start_time_from_run_id_without_manifest(tmp_path: Path) -> None:
    for night in (3, 1, 2):
        run_dir = write_run(tmp_path, run_id_at(night), {"a": {}}, repeats=1, steps=1)
        (run_dir / "manifest.json").unlink()
    results = load_results(tmp_path)
    starts = run_start_times(tmp_path, results)
    assert sorted(starts, key=starts.get) == [run_id_at(1), run_id_at(2), run_id_at(3)]


def test_history_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich: no truncated cells
    root = tmp_path / "results"
    for night in range(NIGHTS):
        scale = {"unet": 1.10} if night >= STEP_NIGHT else {}
        write_run(root, run_id_at(night), {"a": {"scale": scale}}, seed=night, repeats=3, steps=2, noise=0.02)
    charts = tmp_path / "charts"
    assert main(["history", str(root), "--stage", "unet", "--stage", "load/", "--json", "--charts", str(charts)]) == 0
    changes = json.loads(capsys.readouterr().out)
    unet = [c for c in changes if c["stage"] == "unet" and c["metric"] == "latency"]
    assert len(unet) == 1 and unet[0]["run_id"] == run_id_at(STEP_NIGHT)
    assert set(unet[0]) >= {"case", "stage", "metric", "run_id", "median_before", "median_after", "ratio"}
    assert unet[0]["ratio"] == pytest.approx(1.10, abs=0.02)
    assert {c["stage"] for c in changes} <= {"unet", "load/unet"}
    import matplotlib.image

    pngs = sorted(p.name for p in charts.iterdir())
    assert pngs == ["a-load_unet-cold-latency.png", "a-unet-measured-latency.png"]
    image = matplotlib.image.imread(charts / "a-unet-measured-latency.png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert main(["history", str(root), "--stage", "unet"]) == 0
    out = capsys.readouterr().out
    assert "change point" in out and run_id_at(STEP_NIGHT) in out


def test_history_of_nothing_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(tmp_path / "missing-*")]) == 2
    assert "no results.csv found" in capsys.readouterr().err


def test_non_finite_values_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, run_id_at(0), {"a": {}}, repeats=3, steps=1)
    lines = (run / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    value, stage, phase = header.index("value"), header.index("stage"), header.index("phase")
    bad = 0
    for number, line in enumerate(lines[1:], 1):
        cells = line.split(",")
        if cells[stage] == "unet" and cells[phase] == "measured" and bad < 2:
            cells[value] = "nan" if bad == 0 else "inf"
            lines[number], bad = ",".join(cells), bad + 1
    (run / "results.csv").write_text("\n".join(lines) + "\n")
    assert main(["history", str(tmp_path), "--json"]) == 0
    err = capsys.readouterr().err
    assert "left out 2 torn or unparsable rows" in err  # load_results says it (non-finite is unparsable)
    frame = load_results(tmp_path)
    frame.loc[frame.index[(frame["stage"] == "unet") & (frame["phase"] == "measured")][:1], "value"] = float("inf")
    found = build_series(frame, run_start_times(tmp_path, frame), stages=["unet"])
    assert found.non_finite == 1  # a frame built in Python is counted here too
