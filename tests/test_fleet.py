"""Fleets: shards are disjoint and cover the suite (round robin and cost-balanced); merge checks and combines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import TESTS, run_bench

from bench.errors import ResultsError
from bench.fleet import case_costs, merge_runs
from bench.store import load_results
from bench.suite.case import Case
from bench.suite.select import shard_cases

CASES = [Case(suite="s", model=f"m{i}", steps=1 + i % 4) for i in range(23)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 23, 30])
@pytest.mark.parametrize("balanced", [False, True])
def test_shards_are_disjoint_and_cover_the_suite(count: int, balanced: bool) -> None:
    costs = {c.case_id: float((i * 7) % 11 + 1) for i, c in enumerate(CASES[:17])} if balanced else None
    shards = [shard_cases(CASES, i, count, costs) for i in range(1, count + 1)]
    ids = [c.case_id for shard in shards for c in shard]
    assert sorted(ids) == sorted(c.case_id for c in CASES) and len(ids) == len(set(ids))
    for shard in shards:  # each shard keeps the suite's order
        assert [CASES.index(c) for c in shard] == sorted(CASES.index(c) for c in shard)


def test_cost_balanced_shards_are_even() -> None:
    costs = {c.case_id: (100.0 if i in (0, 2) else 1.0) for i, c in enumerate(CASES)}  # two slow cases
    loads = [sum(costs[c.case_id] for c in shard_cases(CASES, i, 2, costs)) for i in (1, 2)]
    assert abs(loads[0] - loads[1]) <= 1.0  # one slow case each, the quick ones split evenly
    round_robin = [sum(costs[c.case_id] for c in shard_cases(CASES, i, 2)) for i in (1, 2)]
    assert abs(round_robin[0] - round_robin[1]) > 90  # both slow cases land in shard 1 by position


SUITE = """
[suite]
name = "fleet"
[defaults]
steps = 1
warmup = 0
repeats = 1
min_repeats = 1
engine = "reference"
compute_unit = "REFERENCE"
[matrix]
model = ["fake-ok", "fake-ok-2", "fake-ok-3", "fake-ok-4", "fake-ok-5"]
"""



def _shard_runs(tmp_path: Path, count: int, *extra: str) -> list[Path]:
    (tmp_path / "fleet.toml").write_text(SUITE)
    runs = []
    for index in range(1, count + 1):
        out = tmp_path / f"machine{index}"
        done = run_bench(tmp_path, "run", "--suite", "fleet.toml", "--shard", f"{index}/{count}", "--no-progress",
                      "--plugin", "fake_executor:PLUGIN", "-o", str(out), *extra)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
        runs.append(run_dir)
    return runs


def test_merge_combines_shards_into_one_run(tmp_path: Path) -> None:
    runs = _shard_runs(tmp_path, 2)
    done = run_bench(tmp_path, "merge", *map(str, runs), "-o", str(tmp_path / "merged"))
    assert done.returncode == 0, done.stderr
    (merged,) = (tmp_path / "merged").iterdir()
    frame = load_results(merged)
    closing = frame[frame["stage"] == "outcome"]
    assert sorted(closing["model"].astype(str)) == ["fake-ok", "fake-ok-2", "fake-ok-3", "fake-ok-4", "fake-ok-5"]
    assert frame["run_id"].nunique() == 1 and frame["run_id"].iloc[0] == merged.name
    manifest = json.loads((merged / "manifest.json").read_text())
    assert [s["shard"] for s in manifest["shards"]] == ["1/2", "2/2"]
    assert {s["run_id"] for s in manifest["shards"]} == {r.name for r in runs}
    assert manifest["status_counts"] == {"ok": 5}

    # balanced by the merged run's own wall times: still disjoint and complete when merged
    (tmp_path / "again").mkdir()
    balanced = _shard_runs(tmp_path / "again", 2, "--shard-costs", str(merged))
    assert merge_runs(balanced, tmp_path / "merged-balanced").is_dir()
    assert set(case_costs(merged)) == set(closing["case_id"].astype(str))


def test_merge_refuses_what_does_not_belong_together(tmp_path: Path) -> None:
    runs = _shard_runs(tmp_path, 3)
    with pytest.raises(ResultsError, match="shard\\(s\\) 3/3 missing"):
        merge_runs(runs[:2], tmp_path / "out")
    with pytest.raises(ResultsError, match="appears twice"):
        merge_runs([runs[0], runs[0], runs[1], runs[2]], tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    (other / "fleet.toml").write_text(SUITE.replace("fake-ok-5", "fake-ok-6"))
    done = run_bench(other, "run", "--suite", "fleet.toml", "--shard", "3/3", "--no-progress",
                  "--plugin", "fake_executor:PLUGIN", "-o", "out")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (foreign,) = (other / "out").iterdir()
    with pytest.raises(ResultsError, match="suite differs"):
        merge_runs([runs[0], runs[1], foreign], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written for a refused merge
    refused = run_bench(tmp_path, "merge", str(runs[0]), "-o", str(tmp_path / "out"))
    assert refused.returncode == 2 and "missing" in refused.stderr


def test_fleet_workflow_shards_merges_and_gates() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((TESTS.parent / ".github" / "workflows" / "fleet.yml").read_text())
    jobs = workflow["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(workflow["env"]["SHARDS"]) + 1))
    assert "self-hosted" in jobs["shard"]["runs-on"] and "self-hosted" in jobs["merge"]["runs-on"]
    shard_steps = " ".join(step.get("run", "") for step in jobs["shard"]["steps"])
    merge_steps = " ".join(step.get("run", "") for step in jobs["merge"]["steps"])
    assert 'bench run --suite "$SUITE" --shard "${{ matrix.shard }}/$SHARDS"' in shard_steps
    assert "--shard-costs $BASELINE" in shard_steps
    assert "bench merge shards/shard-*/* --output merged/" in merge_steps
    assert 'bench compare "$BASELINE" merged/' in merge_steps
    assert jobs["merge"]["needs"] == "shard"
