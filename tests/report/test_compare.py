"""The regression gate: a planted slowdown is found, noise is not, small samples are said to be small."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_factory import run_id_at, write_run  # noqa: E402

from bench.errors import ResultsError  # noqa: E402
from bench.report.compare import (  # noqa: E402
    Side,
    Thresholds,
    compare_results,
    junit_xml,
    load_side,
    markdown_summary,
    parse_threshold,
    stage_group,
)


def two_runs(tmp_path: Path, base: dict, cand: dict, seed: int = 0, **options) -> tuple[Side, Side]:
    a = write_run(tmp_path, run_id_at(0), base, seed=seed, **options)
    b = write_run(tmp_path, run_id_at(1), cand, seed=seed + 1000, **options)
    return load_side(str(a)), load_side(str(b))


def verdicts(result, case_id: str, metric: str = "latency") -> dict[str, str]:
    return {c.label: c.verdict for c in result.comparisons if c.case_id == case_id and c.metric == metric}


def test_planted_unet_slowdown_is_a_regression(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}, "b": {}}, {"a": {"scale": {"unet": 1.10}}, "b": {}})
    result = compare_results(base, cand)
    unet = next(c for c in result.comparisons if c.case_id == "a" and c.stage == "unet" and c.metric == "latency")
    assert unet.verdict == "regression" and unet.group == "unet"
    assert unet.ratio == pytest.approx(1.10, abs=0.01)
    assert 1.0 < unet.ci_low < 1.10 < unet.ci_high < 1.2
    assert unet.p_value is not None and unet.p_value < result.alpha and unet.significance_decidable
    assert (unet.baseline_n, unet.candidate_n) == (32, 32)  # 8 repeats x 4 steps, pooled
    # the untouched stages and the untouched case do not move
    assert {v for k, v in verdicts(result, "b").items()} == {"unchanged"}
    assert verdicts(result, "a")["text_encoder"] == "unchanged"
    assert result.exit_code == 1 and [c.stage for c in result.regressions] == ["unet", "end_to_end"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_noise_alone_is_not_a_regression(tmp_path: Path, seed: int) -> None:
    base, cand = two_runs(tmp_path, {"a": {}, "b": {}}, {"a": {}, "b": {}}, seed=seed, noise=0.03)
    result = compare_results(base, cand)
    assert result.regressions == [] and result.exit_code == 0


def test_thresholds_per_group_and_metric(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}}, {"a": {"scale": {"unet": 1.10, "peak_rss": 1.08}}})
    loose = compare_results(base, cand, thresholds=Thresholds.parse(["unet=15%", "end_to_end=15%", "peak_rss=10%"]))
    assert loose.regressions == []
    assert next(c for c in loose.comparisons if c.stage == "unet").threshold == 0.15
    strict = compare_results(base, cand, thresholds=Thresholds.parse(["20%", "vae.peak_rss=3%"]))
    assert [(c.stage, c.metric) for c in strict.regressions] == [("vae_decoder", "peak_rss")]
    assert Thresholds.parse(["unet=3%", "unet.latency=1%", "latency=2%"]).for_("unet", "latency") == 0.01
    assert Thresholds.parse(["unet=3%", "latency=2%"]).for_("unet", "latency") == 0.03
    assert Thresholds.parse(["latency=2%"]).for_("vae", "latency") == 0.02
    assert parse_threshold("load=20%") == ("load", 0.2) and parse_threshold("2.5%") == (None, 0.025)
    for bad in ("unet=3", "bogus=3%", "unet.bogus=3%", "=%", "-3%"):
        with pytest.raises(ValueError, match="threshold"):
            parse_threshold(bad)


def test_stage_groups() -> None:
    assert [stage_group(s) for s in ("text_encoder_2", "scheduler", "diffusion", "vae_decoder", "load/unet",
                                     "compile/vae_decoder", "first_predict/unet", "end_to_end", "process")] == [
        "encoders", "unet", "unet", "vae", "load", "load", "load", "end_to_end", "end_to_end"]  # fmt: skip


def test_too_few_samples_is_reported_not_guessed(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}}, {"a": {"scale": {"vae_decoder": 1.3, "load/unet": 1.5}}}, repeats=3)
    result = compare_results(base, cand)
    vae = next(c for c in result.comparisons if c.stage == "vae_decoder" and c.metric == "latency")
    assert vae.verdict == "too_few_samples" and vae.p_value is None and not vae.significance_decidable
    assert "3 vs 3 samples" in vae.note and vae.ratio == pytest.approx(1.3, abs=0.03)
    load = next(c for c in result.comparisons if c.stage == "load/unet")
    assert load.verdict == "too_few_samples" and (load.baseline_n, load.candidate_n) == (1, 1)
    assert result.regressions == [] and result.exit_code == 0


def test_globs_pool_runs_so_cold_loads_can_be_decided(tmp_path: Path) -> None:
    for night in range(12):
        scale = {"load/unet": 1.5} if night >= 6 else {}
        write_run(tmp_path / ("base" if night < 6 else "cand"), run_id_at(night), {"a": {"scale": scale}}, seed=night, repeats=2)
    base, cand = load_side(str(tmp_path / "base" / "2026*")), load_side(str(tmp_path / "cand" / "2026*"))
    assert len(base.run_ids) == len(cand.run_ids) == 6
    result = compare_results(base, cand)
    load = next(c for c in result.comparisons if c.stage == "load/unet")
    assert (load.baseline_n, load.candidate_n) == (6, 6) and load.verdict == "regression"


def test_cases_on_one_side_are_listed(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}, "gone": {}}, {"a": {}, "new": {}})
    result = compare_results(base, cand)
    assert [r.case_id for r in result.only_baseline] == ["gone"]
    assert [r.case_id for r in result.only_candidate] == ["new"]
    assert {c.case_id for c in result.comparisons} == {"a"}
    text = markdown_summary(result)
    assert "Cases only in the baseline" in text and "tiny gone REFERENCE" in text and "tiny new REFERENCE" in text


def test_mixed_devices_and_engines_are_refused(tmp_path: Path) -> None:
    base = load_side(str(write_run(tmp_path, run_id_at(0), {"a": {}})))
    other = load_side(str(write_run(tmp_path, run_id_at(1), {"a": {"chip": "Apple M3 Max"}})))
    with pytest.raises(ResultsError, match="different devices.*Apple M2 Pro.*Apple M3 Max.*--allow-mixed"):
        compare_results(base, other)
    assert compare_results(base, other, allow_mixed=True).comparisons
    coreml = load_side(str(write_run(tmp_path, run_id_at(2), {"a": {"engine": "coreml"}})))
    with pytest.raises(ResultsError, match="different engines.*reference.*coreml"):
        compare_results(base, coreml)


def test_failed_and_invalid_cases_are_not_gated(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}, "b": {}}, {"a": {"scale": {"unet": 1.5}}, "b": {"status": "error"}})
    frame = cand.results.copy()
    closing = frame["stage"].astype("string") == "outcome"
    frame["valid"] = pd_boolean(closing & (frame["case_id"] == "a"), False)
    frame["invalid_reason"] = frame["valid"].map({False: "thermal throttling"}).astype("string")
    invalid = Side("cand", frame)
    result = compare_results(base, invalid)
    assert {c.verdict for c in result.comparisons if c.case_id == "a"} == {"not_gated"}
    assert "candidate invalid: thermal throttling" in result.comparisons[0].note
    assert {c.verdict for c in result.comparisons if c.case_id == "b"} == {"failed"}
    assert result.exit_code == 0
    gated = compare_results(base, invalid, include_invalid=True)
    assert any(c.case_id == "a" and c.stage == "unet" for c in gated.regressions)


def pd_boolean(mask, value: bool):
    import pandas as pd

    return pd.Series(pd.NA, index=mask.index, dtype="boolean").mask(mask, value)


def test_non_finite_values_are_counted(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}}, {"a": {}})
    frame = cand.results.copy()
    measured = frame.index[(frame["phase"] == "measured") & (frame["stage"] == "unet")]
    frame.loc[measured[:3], "value"] = float("inf")
    result = compare_results(base, Side("cand", frame))
    assert result.warnings == ["cand: 3 non-finite value(s) left out of the samples"]


JUNIT_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err", "properties"}


def test_junit_xml_has_the_shape_ci_reads(tmp_path: Path) -> None:
    base, cand = two_runs(tmp_path, {"a": {}, "b": {}}, {"a": {"scale": {"unet": 1.10}}, "b": {}}, repeats=3)
    result = compare_results(base, cand)
    root = ET.fromstring(junit_xml(result))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 2 and all(child.tag == "testsuite" for child in root)
    for name in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(name)) == sum(int(s.get(name)) for s in suites)
    for suite in suites:
        cases = suite.findall("testcase")
        assert suite.get("name") and int(suite.get("tests")) == len(cases) and float(suite.get("time")) >= 0
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
        for case in cases:
            assert case.get("classname") and case.get("name") and float(case.get("time")) >= 0
            assert {child.tag for child in case} <= JUNIT_CHILDREN
            failure = case.find("failure")
            if failure is not None:
                assert failure.get("message").startswith("regression") and failure.get("type") == "regression"
    stages = {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "bench.compare.a"}
    assert stages["unet"].find("failure") is not None  # 12 vs 12 per-step samples: decided
    assert stages["load/unet (cold)"].find("skipped") is None  # within threshold: passes, undecided or not
    assert int(root.get("failures")) == 1 and len(list(root.iter("testcase"))) == int(root.get("tests"))


def test_json_is_plain_and_complete(tmp_path: Path) -> None:
    import json

    base, cand = two_runs(tmp_path, {"a": {}}, {"a": {"scale": {"unet": 1.10}}})
    data = json.loads(json.dumps(compare_results(base, cand).to_json(), allow_nan=False))
    assert data["regressions"] == 2 and data["thresholds"] == {"default": 0.05}
    first = data["comparisons"][0]
    assert set(first) >= {"case_id", "case", "stage", "metric", "ratio", "ci_low", "ci_high", "p_value", "verdict",
                          "threshold", "baseline_n", "candidate_n", "significance_decidable"}  # fmt: skip
    assert first["stage"] == "load/unet" and first["ci_low"] is None and first["p_value"] is None
