"""Fleets: shards of one suite run on several machines, balanced by cost, then merged into one run.

`bench run --shard K/N --shard-costs RESULTS` splits a suite's cases into N disjoint shards whose
expected durations (medians of each case's worker wall time in earlier results) are balanced;
every machine must be given the same cost source, so all compute the same split. `bench merge`
checks that the shard runs belong together (same suite file, same selection, every shard of 1..N
exactly once, no case twice, every case finished) and writes them as one run folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import ResultsError
from bench.schema import COLUMN_NAMES, OUTCOME_STAGE, SCHEMA_VERSION
from bench.store import (
    MANIFEST_FILE,
    RESULTS_FILE,
    ResultsWriter,
    create_run_dir,
    find_results_files,
    new_run_id,
    read_rows,
    utc_timestamp,
    write_json_atomic,
)


def case_costs(source: Any) -> dict[str, float]:
    """Case id -> median worker wall time (s) of its finished runs in `source` (a results tree,
    run folder, file or glob); ResultsError when it holds no results file."""
    from bench.measure.stats import describe

    files = find_results_files(source)
    if not files:
        raise ResultsError(f"--shard-costs {source}: no {RESULTS_FILE} found there")
    walls: dict[str, list[float]] = {}
    for file in files:
        for row in read_rows(file):
            if row.get("stage") in (OUTCOME_STAGE, "case") and row.get("status") == "ok" and row.get("value"):
                try:
                    walls.setdefault(row["case_id"], []).append(float(row["value"]))
                except ValueError:
                    continue  # a damaged cell costs nothing here: the case gets the median cost
    return {case_id: describe(values).median for case_id, values in walls.items()}


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"cannot merge {run_dir}: no {MANIFEST_FILE} (not a run folder)") from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"cannot merge {run_dir}: {path} is unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise ResultsError(f"cannot merge {run_dir}: {path} is not a manifest")
    return manifest


def _shard_of(run_dir: Path, manifest: dict[str, Any]) -> tuple[int, int]:
    from bench.suite.select import parse_shard

    text = (manifest.get("selection") or {}).get("shard")
    if not text:
        raise ResultsError(f"cannot merge {run_dir}: it is not a shard run (no --shard in its selection)")
    return parse_shard(text)


def merge_runs(run_dirs: Sequence[Path], output: Path) -> Path:
    """Check that `run_dirs` are the shards of one run and write them as one run folder in `output`."""
    runs = [(Path(d), _manifest(Path(d))) for d in run_dirs]
    if not runs:
        raise ResultsError("bench merge: name the shard run folders to merge")
    first_dir, first = runs[0]
    machine_local = ("shard", "shard_costs")  # may differ per machine (the costs' path); the split is checked below
    reference = {k: v for k, v in (first.get("selection") or {}).items() if k not in machine_local}
    shards: dict[int, Path] = {}
    count = None
    for run_dir, manifest in runs:
        if (manifest.get("suite") or {}).get("sha256") != (first.get("suite") or {}).get("sha256") or (
            (manifest.get("suite") or {}).get("name") != (first.get("suite") or {}).get("name")
        ):
            raise ResultsError(f"cannot merge {run_dir}: its suite differs from {first_dir}'s")
        selection = {k: v for k, v in (manifest.get("selection") or {}).items() if k not in machine_local}
        if selection != reference:
            raise ResultsError(f"cannot merge {run_dir}: its selection {selection} differs from {first_dir}'s {reference}")
        index, total = _shard_of(run_dir, manifest)
        if count is not None and total != count:
            raise ResultsError(f"cannot merge {run_dir}: shard {index}/{total} is not one of {count}")
        count = total
        if index in shards:
            raise ResultsError(f"cannot merge: shard {index}/{total} appears twice ({shards[index]} and {run_dir})")
        shards[index] = run_dir
    missing = [i for i in range(1, (count or 0) + 1) if i not in shards]
    if missing:
        raise ResultsError(f"cannot merge: shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing")

    owner: dict[str, Path] = {}
    rows_by_run: list[list[dict[str, str]]] = []
    for run_dir, manifest in runs:
        path = run_dir / RESULTS_FILE
        rows = read_rows(path) if path.exists() else []
        if rows and list(rows[0]) != list(COLUMN_NAMES):
            raise ResultsError(f"cannot merge {path}: not a results file of schema {SCHEMA_VERSION}")
        finished = {r["case_id"] for r in rows if r.get("stage") == OUTCOME_STAGE and r.get("status") != "interrupted"}
        planned = [c["case_id"] for c in manifest.get("cases", [])]
        unfinished = [c for c in planned if c not in finished]
        if unfinished:
            raise ResultsError(f"cannot merge {run_dir}: {len(unfinished)} case(s) did not finish; resume it first")
        for case_id in planned:
            if case_id in owner:
                raise ResultsError(f"cannot merge: case {case_id} is in both {owner[case_id]} and {run_dir}")
            owner[case_id] = run_dir
        rows_by_run.append(rows)
    selected = first.get("selected_case_ids")
    for run_dir, manifest in runs:
        if manifest.get("selected_case_ids") != selected:
            raise ResultsError(f"cannot merge {run_dir}: its shards split a different set of cases than {first_dir}'s")
    uncovered = [case_id for case_id in selected or [] if case_id not in owner]
    if uncovered:
        raise ResultsError(
            f"cannot merge: {len(uncovered)} selected case(s) are in no shard (shards balanced with different "
            "--shard-costs?)"
        )

    run_id = new_run_id()
    merged_dir = create_run_dir(output, run_id)
    writer = ResultsWriter(merged_dir / RESULTS_FILE)
    for rows in rows_by_run:
        writer.append([{**row, "run_id": run_id} for row in rows])
    for run_dir, _ in runs:
        for folder in ("images", "logs"):
            if (run_dir / folder).is_dir():
                shutil.copytree(run_dir / folder, merged_dir / folder, dirs_exist_ok=True)
    counts: dict[str, int] = {}
    for rows in rows_by_run:
        for row in rows:
            if row.get("stage") == OUTCOME_STAGE:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
    write_json_atomic(merged_dir / MANIFEST_FILE, {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "merged": utc_timestamp(),
        "suite": first.get("suite"),
        "selection": {**reference, "shard": None},
        "selected_case_ids": selected,
        "shards": [
            {"shard": f"{index}/{count}", "run_id": manifest.get("run_id"), "path": str(run_dir),
             "machine": (manifest.get("environment") or {}).get("machine"), "started": manifest.get("started"),
             "finished": manifest.get("finished"), "interrupted": manifest.get("interrupted")}
            for index, (run_dir, manifest) in sorted((_shard_of(d, m)[0], (d, m)) for d, m in runs)
        ],
        "cases": [case for _, manifest in runs for case in manifest.get("cases", [])],
        "models": {k: v for _, manifest in runs for k, v in (manifest.get("models") or {}).items()},
        "environment": first.get("environment"),
        "status_counts": counts,
    })  # fmt: skip
    return merged_dir
