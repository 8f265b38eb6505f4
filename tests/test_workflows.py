"""The CI workflow parses and runs the jobs and commands the README's "Continuous integration" describes."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML: a test extra (also installed with huggingface_hub)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _runs(job: dict) -> list[str]:
    return [step["run"].split("#")[0].strip() for step in job["steps"] if "run" in step]


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_every_workflow_file_parses():
    files = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in files
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict) and data.get("jobs"), path


def test_triggers_and_jobs(workflow):
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert set(workflow["jobs"]) == {"test-linux", "test-macos"}
    assert workflow["jobs"]["test-linux"]["runs-on"].startswith("ubuntu")
    macos = workflow["jobs"]["test-macos"]
    assert macos["strategy"]["matrix"]["os"] == ["macos-14", "macos-15"] and macos["runs-on"] == "${{ matrix.os }}"


@pytest.mark.parametrize(("job", "engine"), [("test-linux", "reference"), ("test-macos", "coreml")])
def test_each_job_tests_benchmarks_uploads_and_gates(workflow, job, engine):
    steps = workflow["jobs"][job]
    runs = _runs(steps)
    bench_run = f"bench run --suite ci --engine {engine} --output results --no-progress"
    for command in ("python -m pip install -e \".[test]\"", "python -m pytest -q", bench_run,
                    "bench compare baseline/ results/"):  # fmt: skip
        assert command in runs, (job, command)
    assert runs.index("python -m pytest -q") < runs.index(bench_run) < runs.index("bench compare baseline/ results/")
    assert {"actions/upload-artifact", "actions/cache/restore", "actions/cache/save"} <= set(_uses(steps))
    upload = next(s for s in steps["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "results/" and upload["if"] == "always()"


def test_the_ci_suite_measures_cpu_only_and_all():
    from bench.suite import load_suite

    units = {case.compute_unit for case in load_suite("ci", ROOT).cases()}
    assert units == {"CPU_ONLY", "ALL"}


def test_the_readme_describes_the_same_jobs_and_commands(workflow):
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    section = readme.split("## Continuous integration", 1)[1].split("## ", 1)[0]
    assert ".github/workflows/bench.yml" in section
    for job in workflow["jobs"]:
        assert f"`{job}`" in section, job
    for runner in ("ubuntu-24.04", "macos-14", "macos-15"):
        assert runner in section
    commands = {c for j in workflow["jobs"].values() for c in _runs(j) if c.startswith(("bench", "python -m pytest"))}
    for command in commands:
        assert f"`{command}`" in section, command
    assert "Neural Engine" in section and "--device" in section  # what only a person with hardware can check
