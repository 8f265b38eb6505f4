"""A benchmark run from suite to results folder: plan, prepare models, manifest, run, resume.

`bench run` is a thin layer over this module; notebooks and nightly scripts can call it directly.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.engines import coreml_runs_here
from bench.errors import Interrupted, ResultsError, SuiteError
from bench.fleet import case_costs
from bench.lifeline import install_stop_handlers
from bench.measure.environment import capture_environment, power_state
from bench.model_prep import PreparedModel
from bench.plugin import DEFAULT_PLUGIN, load_plugin
from bench.run_lock import RunLock
from bench.runner import CaseOutcome, NullProgress, ProgressListener, Runner
from bench.schema import OUTCOME_STAGE, SCHEMA_VERSION, EnvironmentColumns
from bench.store import (
    MANIFEST_FILE,
    RESULTS_FILE,
    check_appendable,
    create_run_dir,
    drop_incomplete_cases,
    new_run_id,
    prepare_output_dir,
    read_rows,
    utc_timestamp,
    write_json_atomic,
)
from bench.suite import Case, filter_cases, load_suite, parse_shard, plan_cases, shard_cases
from bench.suite.fields import FIELDS
from bench.suite.loader import DEFAULT_SUITE, with_label_extras


@dataclass
class Selection:
    """Which cases a run measures, as given on the command line (stored for --resume)."""

    suite: str = DEFAULT_SUITE
    keyword: str | None = None
    shard: str | None = None
    shard_costs: str | None = None  # results whose case wall times balance the shards
    engine: str | None = None
    repeats: int | None = None
    warmup: int | None = None
    timeout: float | None = None
    device: str | None = None  # --device: an iPhone / iPad runs the Core ML models (issue 11)


@dataclass
class RunPlan:
    suite_name: str
    suite_path: Path
    suite_description: str
    selection: Selection
    cases: list[Case] = field(default_factory=list)
    #: ids of every case the selection names before sharding (a merge checks the shards cover them)
    selected_case_ids: list[str] = field(default_factory=list)


def plan_run(selection: Selection, cwd: Path | None = None, *, allow_empty: bool = False) -> RunPlan:
    """Load the suite, fit it to this machine, apply overrides, `-k` and the shard."""
    suite = load_suite(selection.suite, cwd)
    cases = suite.cases()
    overrides = {k: v for k, v in (("repeats", selection.repeats), ("warmup", selection.warmup),
                                   ("timeout", selection.timeout)) if v is not None}  # fmt: skip
    if overrides:
        cases = [case.with_(**overrides) for case in cases]
    engine_override = selection.engine
    if selection.device:  # --device: Core ML on the device, driven from this Mac
        from bench.devices import devices_unsupported_reason

        reason = devices_unsupported_reason()
        if reason or selection.engine not in (None, "coreml"):
            raise SuiteError(f"--device {selection.device}: {reason or '--engine must be coreml (or left out)'}")
        engine_override = "coreml"
        cases = [case.with_(device=selection.device) for case in cases]
    cases = plan_cases(
        cases,
        coreml_available=coreml_runs_here(),
        reference_fallback=suite.reference_fallback and not selection.device,
        engine_override=engine_override,
    )
    cases = with_label_extras(cases)
    cases = filter_cases(cases, selection.keyword)
    selected = [case.case_id for case in cases]
    if selection.shard:
        costs = case_costs(selection.shard_costs) if selection.shard_costs else None
        cases = shard_cases(cases, *parse_shard(selection.shard), costs=costs)
    if not cases and not allow_empty:
        raise SuiteError(f"no case of suite {suite.name!r} ({suite.path}) matches -k {selection.keyword!r}")
    return RunPlan(suite.name, suite.path, suite.description, selection, cases, selected)


@dataclass
class RunSession:
    """An open run folder: its manifest and the runner writing into it."""

    run_dir: Path
    run_id: str
    manifest: dict[str, Any]
    plan: RunPlan
    #: model id -> what the plugin prepared (the manifest holds their `to_manifest()` form).
    models: dict[str, PreparedModel] = field(default_factory=dict)
    #: the run folder's lock, held from creation (or resume) until `execute` ends.
    lock: RunLock | None = None

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
    plugin: str = DEFAULT_PLUGIN,
    status: Callable[[str], None] = lambda text: None,
    argv: list[str] | None = None,
) -> RunSession:
    """Check the output folder, prepare models, then create the run folder and its manifest.

    Everything that can refuse the run (unwritable folder, absent model) happens before the run
    folder exists, so a refused run leaves nothing behind.
    """
    prepare_output_dir(output)
    models = load_plugin(plugin).prepare_models(plan.cases, status)
    environment = capture_environment()
    if plan.selection.device:  # the device's identity for manifest and rows; ModelRunner prepared once
        from bench.devices import remote_device_environment
        from bench.engines.coreml_remote import prepare_device

        environment["remote_device"] = remote_device_environment(plan.selection.device)
        prepare_device(plan.selection.device, status)
    run_id = new_run_id()
    run_dir = create_run_dir(output, run_id)
    lock = RunLock(run_dir).acquire()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "command": argv if argv is not None else sys.argv,
        "plugin": plugin,
        "suite": {
            "name": plan.suite_name,
            "path": str(plan.suite_path),
            "description": plan.suite_description,
            "sha256": _file_sha256(plan.suite_path),
        },
        "selection": asdict(plan.selection),
        "cases": [{"case_id": c.case_id, "label": c.label, **c.to_dict()} for c in plan.cases],
        "selected_case_ids": plan.selected_case_ids,
        "models": {model_id: prepared.to_manifest() for model_id, prepared in models.items()},
        "environment": environment,
        "threads": _thread_plan(),
        "power": {"start": power_state(), "end": None},
        "started": utc_timestamp(),
        "finished": None,
        "interrupted": False,
        "resumed": [],
        "status_counts": {},
    }
    session = RunSession(run_dir, run_id, manifest, plan, models, lock)
    session.save_manifest()
    return session


def resume_run(
    run_dir: Path, *, plugin: str | None = None, status: Callable[[str], None] = lambda text: None
) -> RunSession:
    """Reopen a run folder: same cases as its manifest; cases cut short are dropped and rerun.

    The run folder's lock is taken first: a run another `bench run` holds is refused before
    anything is read or written.
    """
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST_FILE).is_file():  # checked before the lock file is made in it
        raise ResultsError(f"cannot resume {run_dir}: no {MANIFEST_FILE} (not a run folder)")
    lock = RunLock(run_dir).acquire()
    try:
        return _reopen(run_dir, lock, plugin, status)
    except BaseException:
        lock.release()
        raise


def _read_manifest(run_dir: Path) -> tuple[dict[str, Any], RunPlan]:
    """The manifest of a run folder and the plan it records; ResultsError naming what is wrong."""
    manifest_path = run_dir / MANIFEST_FILE
    where = f"cannot resume {run_dir}: {manifest_path}"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"cannot resume {run_dir}: no {MANIFEST_FILE} (not a run folder)") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ResultsError(f"{where} is unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise ResultsError(f"{where} is not a JSON object")
    version = manifest.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{where}: schema_version {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"cannot resume {run_dir}: written by a newer bench (schema {version})")
    if not isinstance(manifest.get("run_id"), str) or not manifest["run_id"]:
        raise ResultsError(f"{where}: run_id is missing or not a string")
    entries = manifest.get("cases")
    if not isinstance(entries, list):
        raise ResultsError(f"{where}: cases is missing or not a list")
    cases = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise TypeError("not an object")
            case = Case.from_dict(entry)
            for name, spec in FIELDS.items():
                value = getattr(case, name)
                if value is not None and value != spec.default:
                    try:
                        spec.check(value)
                    except ValueError:
                        raise ValueError(f"{name} = {value!r} is not {spec.allowed}") from None
            if entry.get("case_id") not in (None, case.case_id):
                raise ValueError(f"its case_id {entry.get('case_id')!r} does not match its fields")
        except (TypeError, ValueError) as error:
            raise ResultsError(f"{where}: cases[{index}] is not a case ({error})") from None
        cases.append(case)
    suite = manifest.get("suite") if isinstance(manifest.get("suite"), dict) else {}
    selection = manifest.get("selection") if isinstance(manifest.get("selection"), dict) else {}
    try:
        chosen = Selection(**selection)
    except TypeError as error:
        raise ResultsError(f"{where}: selection is not one bench wrote ({error})") from None
    plan = RunPlan(str(suite.get("name", "?")), Path(str(suite.get("path", "?"))), str(suite.get("description", "")),
                   chosen, cases, list(manifest.get("selected_case_ids") or []))  # fmt: skip
    return manifest, plan


def _reopen(run_dir: Path, lock: RunLock, plugin: str | None, status: Callable[[str], None]) -> RunSession:
    takeover = lock.describe_takeover()
    if takeover:
        status(f"warning: {takeover}")
    manifest, plan = _read_manifest(run_dir)
    check_appendable(run_dir / RESULTS_FILE)  # before anything is written: a refused resume changes nothing
    cases = plan.cases
    plugin = plugin or manifest.get("plugin") or DEFAULT_PLUGIN
    models = load_plugin(plugin).prepare_models(cases, status)
    manifest.setdefault("models", {}).update({model_id: p.to_manifest() for model_id, p in models.items()})
    for board in run_dir.glob(".stage-*.board"):  # left by a runner that was SIGKILLed
        board.unlink(missing_ok=True)
    dropped = drop_incomplete_cases(run_dir / RESULTS_FILE)
    if dropped:
        status(f"dropped {dropped} rows of a case that was cut short; it runs again")
    manifest["plugin"] = plugin
    manifest.setdefault("resumed", []).append({"at": utc_timestamp(), "power": power_state()})
    manifest["interrupted"] = False
    manifest.pop("signal", None)
    session = RunSession(run_dir, manifest["run_id"], manifest, plan, models, lock)
    session.save_manifest()
    return session


def execute(
    session: RunSession, *, progress: ProgressListener | None = None, env: dict[str, str] | None = None
) -> list[CaseOutcome]:
    """Run the session's cases (skipping finished ones); the manifest records how it ended."""
    runner = Runner(
        session.run_dir,
        session.run_id,
        EnvironmentColumns.from_environment(session.manifest["environment"]),
        plugin=session.manifest.get("plugin", DEFAULT_PLUGIN),
        progress=progress or NullProgress(),
        env=env,
        models=session.models,
    )
    outcomes: list[CaseOutcome] = []
    try:
        with install_stop_handlers():
            outcomes = runner.run(session.plan.cases)
    except KeyboardInterrupt as stop:
        session.manifest["interrupted"] = True
        session.manifest["signal"] = stop.name if isinstance(stop, Interrupted) else "SIGINT"
        raise
    finally:
        # From the file, not the outcomes: right after an interrupt and across resumes too.
        counts: dict[str, int] = {}
        if session.results_path.exists():
            for row in read_rows(session.results_path):
                if row.get("stage") == OUTCOME_STAGE:
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
        session.manifest["status_counts"] = counts
        session.manifest["finished"] = utc_timestamp()
        session.manifest["power"]["end"] = power_state()
        session.manifest["power"].setdefault("cases", {}).update(runner.power)
        session.save_manifest()
        if session.lock is not None:
            session.lock.release()
    return outcomes
