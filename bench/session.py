"""A benchmark run from suite to results folder: plan, prepare models, manifest, run, resume.

`bench run` is a thin layer over this module; notebooks and nightly scripts can call it directly.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.case_exec import DEFAULT_EXECUTOR
from bench.engines import coreml_runs_here
from bench.errors import ResultsError, SuiteError
from bench.measure.environment import capture_environment, power_state, row_columns
from bench.runner import CaseOutcome, NullProgress, ProgressListener, Runner
from bench.store import (
    CASE_STAGE,
    MANIFEST_FILE,
    RESULTS_FILE,
    SCHEMA_VERSION,
    create_run_dir,
    drop_incomplete_cases,
    new_run_id,
    prepare_output_dir,
    read_rows,
    utc_timestamp,
    write_json_atomic,
)
from bench.suite import Case, filter_cases, load_suite, parse_shard, plan_cases, shard_cases
from bench.suite.loader import DEFAULT_SUITE, with_label_extras


@dataclass
class Selection:
    """Which cases a run measures, as given on the command line (stored for --resume)."""

    suite: str = DEFAULT_SUITE
    keyword: str | None = None
    shard: str | None = None
    engine: str | None = None
    repeats: int | None = None
    warmup: int | None = None
    timeout: float | None = None


@dataclass
class RunPlan:
    suite_name: str
    suite_path: Path
    suite_description: str
    selection: Selection
    cases: list[Case] = field(default_factory=list)


def plan_run(selection: Selection, cwd: Path | None = None, *, allow_empty: bool = False) -> RunPlan:
    """Load the suite, fit it to this machine, apply overrides, `-k` and the shard."""
    suite = load_suite(selection.suite, cwd)
    cases = suite.cases()
    overrides = {k: v for k, v in (("repeats", selection.repeats), ("warmup", selection.warmup),
                                   ("timeout", selection.timeout)) if v is not None}  # fmt: skip
    if overrides:
        cases = [case.with_(**overrides) for case in cases]
    cases = plan_cases(
        cases,
        coreml_available=coreml_runs_here(),
        reference_fallback=suite.reference_fallback,
        engine_override=selection.engine,
    )
    cases = with_label_extras(cases)
    cases = filter_cases(cases, selection.keyword)
    if selection.shard:
        cases = shard_cases(cases, *parse_shard(selection.shard))
    if not cases and not allow_empty:
        raise SuiteError(f"no case of suite {suite.name!r} ({suite.path}) matches -k {selection.keyword!r}")
    return RunPlan(suite.name, suite.path, suite.description, selection, cases)


def executor_models_hook(executor: str) -> Callable[..., dict[str, Any]] | None:
    """The `prepare_models` function that sits beside the executor, if any."""
    module = importlib.import_module(executor.partition(":")[0])
    return getattr(module, "prepare_models", None)


@dataclass
class RunSession:
    """An open run folder: its manifest and the runner writing into it."""

    run_dir: Path
    run_id: str
    manifest: dict[str, Any]
    plan: RunPlan

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    def save_manifest(self) -> None:
        write_json_atomic(self.run_dir / MANIFEST_FILE, self.manifest)


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _thread_plan() -> dict[str, Any]:
    """The reference engine's thread rule as the workers will apply it (they inherit BENCH_NUM_THREADS)."""
    from bench.engines.reference.threads import plan_threads

    return plan_threads().to_dict()


def start_run(
    plan: RunPlan,
    output: Path,
    *,
    executor: str = DEFAULT_EXECUTOR,
    status: Callable[[str], None] = lambda text: None,
    argv: list[str] | None = None,
) -> RunSession:
    """Check the output folder, prepare models, then create the run folder and its manifest.

    Everything that can refuse the run (unwritable folder, absent model) happens before the run
    folder exists, so a refused run leaves nothing behind.
    """
    prepare_output_dir(output)
    hook = executor_models_hook(executor)
    models = hook(plan.cases, status) if hook else {}
    environment = capture_environment()
    run_id = new_run_id()
    run_dir = create_run_dir(output, run_id)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "command": argv if argv is not None else sys.argv,
        "executor": executor,
        "suite": {
            "name": plan.suite_name,
            "path": str(plan.suite_path),
            "description": plan.suite_description,
            "sha256": _file_sha256(plan.suite_path),
        },
        "selection": asdict(plan.selection),
        "cases": [{"case_id": c.case_id, "label": c.label, **c.to_dict()} for c in plan.cases],
        "models": models,
        "environment": environment,
        "threads": _thread_plan(),
        "power": {"start": power_state(), "end": None},
        "started": utc_timestamp(),
        "finished": None,
        "interrupted": False,
        "resumed": [],
        "status_counts": {},
    }
    session = RunSession(run_dir, run_id, manifest, plan)
    session.save_manifest()
    return session


def resume_run(
    run_dir: Path, *, executor: str | None = None, status: Callable[[str], None] = lambda text: None
) -> RunSession:
    """Reopen a run folder: same cases as its manifest; cases cut short are dropped and rerun."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"cannot resume {run_dir}: no {MANIFEST_FILE} (not a run folder)") from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"cannot resume {run_dir}: {manifest_path} is unreadable ({error})") from None
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ResultsError(f"cannot resume {run_dir}: written by a newer bench (schema {manifest['schema_version']})")
    cases = [Case.from_dict(entry) for entry in manifest.get("cases", [])]
    suite = manifest.get("suite", {})
    plan = RunPlan(suite.get("name", "?"), Path(suite.get("path", "?")), suite.get("description", ""),
                   Selection(**manifest.get("selection", {})), cases)  # fmt: skip
    executor = executor or manifest.get("executor") or DEFAULT_EXECUTOR
    hook = executor_models_hook(executor)
    if hook:
        manifest.setdefault("models", {}).update(hook(cases, status))
    dropped = drop_incomplete_cases(run_dir / RESULTS_FILE)
    if dropped:
        status(f"dropped {dropped} rows of a case that was cut short; it runs again")
    manifest["executor"] = executor
    manifest.setdefault("resumed", []).append({"at": utc_timestamp(), "power": power_state()})
    manifest["interrupted"] = False
    session = RunSession(run_dir, manifest["run_id"], manifest, plan)
    session.save_manifest()
    return session


def execute(
    session: RunSession, *, progress: ProgressListener | None = None, env: dict[str, str] | None = None
) -> list[CaseOutcome]:
    """Run the session's cases (skipping finished ones); the manifest records how it ended."""
    runner = Runner(
        session.run_dir,
        session.run_id,
        row_columns(session.manifest["environment"]),
        executor=session.manifest.get("executor", DEFAULT_EXECUTOR),
        progress=progress or NullProgress(),
        env=env,
        models=session.manifest.get("models", {}),
    )
    outcomes: list[CaseOutcome] = []
    try:
        outcomes = runner.run(session.plan.cases)
    except KeyboardInterrupt:
        session.manifest["interrupted"] = True
        raise
    finally:
        # From the file, not the outcomes: right after an interrupt and across resumes too.
        counts: dict[str, int] = {}
        if session.results_path.exists():
            for row in read_rows(session.results_path):
                if row.get("stage") == CASE_STAGE:
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
        session.manifest["status_counts"] = counts
        session.manifest["finished"] = utc_timestamp()
        session.manifest["power"]["end"] = power_state()
        session.save_manifest()
    return outcomes
