"""Synthetic results in the real schema, written through bench.store (ResultsWriter, bench.schema.COLUMN_NAMES).

`case_rows` builds the rows one case of one run writes (cold loads, a warm-up, measured repeats
with per-step unet/scheduler spans, peak memory, the closing row), with every stage's latency scaled
by a factor and multiplied by seeded noise, so tests can plant a slowdown where they want it.
`write_run` writes a run folder (results.csv + manifest.json) as `bench run` lays it out.
`million_row_csv` builds a large results file's text vectorised, for the scale benchmark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.schema import COLUMN_NAMES, OUTCOME_STAGE, SCHEMA_VERSION
from bench.store import MANIFEST_FILE, RESULTS_FILE, ResultsWriter

#: Base seconds per span of the synthetic pipeline.
BASE_SECONDS: dict[str, float] = {
    "tokenize": 0.001, "text_encoder": 0.020, "text_encoder_2": 0.040, "unet": 0.100, "scheduler": 0.002,
    "vae_decoder": 0.080, "load/unet": 1.5, "first_predict/unet": 0.5,
}  # fmt: skip


def run_id_at(night: int, start: str = "2026-01-01") -> str:
    """A run id of `bench run`'s shape (UTC start + suffix) for night `night` after `start`."""
    epoch = time.mktime(time.strptime(start, "%Y-%m-%d")) - time.timezone + night * 86400 + 2 * 3600
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch)) + f"-{night % 65536:04x}"


def case_rows(
    run_id: str,
    case_id: str,
    *,
    rng: np.random.Generator,
    repeats: int = 8,
    steps: int = 4,
    noise: float = 0.01,
    scale: Mapping[str, float] | None = None,
    memory: float = 500e6,
    status: str = "ok",
    device: str = "Mac14,9",
    chip: str = "Apple M2 Pro",
    engine: str = "reference",
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows of one finished case: `scale[stage]` multiplies that stage's latency (1.0 otherwise)."""
    scale = dict(scale or {})
    base = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "case_id": case_id, "case": f"tiny {case_id} {engine.upper()}", "suite": "synthetic",
            "model": "tiny-split-einsum-fp16", "engine": engine, "compute_unit": "REFERENCE", "attention": "SPLIT_EINSUM",
            "quantization": "fp16", "resolution": 512, "steps": steps, "scheduler": "euler", "guidance": 5.0,
            "batch": 2, "reduce_memory": False, "refiner": False, "seed": 0, "status": status, "valid": True, "device": device,
            "chip": chip, "os": "Linux", "host": "ci", "timestamp": "2026-01-01T02:00:00.000Z", **(extra or {})}  # fmt: skip

    def seconds(stage: str) -> float:
        return BASE_SECONDS[stage] * scale.get(stage, 1.0) * float(1.0 + noise * rng.standard_normal())

    rows = [{**base, "phase": "cold", "stage": stage, "metric": "latency", "value": seconds(stage), "unit": "s"}
            for stage in ("load/unet", "first_predict/unet")]  # fmt: skip
    for phase, count in (("warmup", 1), ("measured", repeats)):
        for repeat in range(count):
            spans = [(stage, None, seconds(stage)) for stage in ("tokenize", "text_encoder", "text_encoder_2")]
            for step in range(steps):
                spans += [("unet", step, seconds("unet")), ("scheduler", step, seconds("scheduler"))]
            spans.append(("vae_decoder", None, seconds("vae_decoder")))
            total = sum(value for _, _, value in spans)
            spans.append(("end_to_end", None, total))
            for stage, step, value in spans:
                rows.append({**base, "phase": phase, "repeat": repeat, "stage": stage, "step": step,
                             "metric": "latency", "value": value, "unit": "s"})  # fmt: skip
            peak = memory * scale.get("peak_rss", 1.0) * float(1.0 + noise * rng.standard_normal())
            rows.append({**base, "phase": phase, "repeat": repeat, "stage": "vae_decoder", "metric": "peak_rss",
                         "value": peak, "unit": "bytes"})  # fmt: skip
    rows.append({**base, "stage": "process", "metric": "peak_rss", "value": memory * 1.2, "unit": "bytes"})
    rows.append({**base, "stage": OUTCOME_STAGE, "metric": "wall_time", "value": 9.0, "unit": "s",
                 "error": None if status == "ok" else "PipelineError: boom"})  # fmt: skip
    return rows


def write_run(root: Path, run_id: str, cases: Mapping[str, Mapping[str, Any]], *, seed: int = 0,
              started: str | None = None, **defaults: Any) -> Path:  # fmt: skip
    """A run folder `root/run_id` with results.csv (one case per entry of `cases`: keyword arguments of
    `case_rows`) and a manifest.json holding the run id and start time."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    writer = ResultsWriter(run_dir / RESULTS_FILE)
    rng = np.random.default_rng(seed)
    for case_id, options in cases.items():
        writer.append(case_rows(run_id, case_id, rng=rng, **{**defaults, **options}))
    manifest = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "started": started or _started(run_id)}
    (run_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    return run_dir


def _started(run_id: str) -> str:
    stamp = time.strptime(run_id.split("-")[0], "%Y%m%dT%H%M%SZ")
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", stamp)


def million_row_csv(rows: int, *, cases: int = 200, runs: int = 10, repeats: int = 5, steps: int = 20,
                    seed: int = 0) -> dict[str, str]:  # fmt: skip
    """results.csv texts (run id -> text) totalling about `rows` rows in the real schema, built with
    numpy string operations (no Python loop per row): every case of every run has cold loads, measured
    repeats of per-step unet/scheduler spans, encoders, the VAE, end-to-end and peak memory, and a
    closing row."""
    rng = np.random.default_rng(seed)
    template = _case_template(repeats, steps)
    per_case = template["stage"].size
    per_run = cases * per_case
    runs = max(1, round(rows / per_run))
    texts: dict[str, str] = {}
    for run in range(runs):
        run_id = run_id_at(run)
        case_index = np.repeat(np.arange(cases), per_case)
        tiled = {key: np.tile(column, cases) for key, column in template.items()}
        values = tiled["base"] * (1.0 + 0.02 * rng.standard_normal(case_index.size))
        columns: dict[str, np.ndarray] = {
            "schema_version": np.full(case_index.size, str(SCHEMA_VERSION)),
            "run_id": np.full(case_index.size, run_id),
            "case_id": np.char.add("c", np.char.zfill(case_index.astype(str), 5)),
            "case": np.char.add("tiny case ", case_index.astype(str)),
            "suite": np.full(case_index.size, "nightly"),
            "model": np.where(case_index % 2 == 0, "tiny-split-einsum-fp16", "tiny-original-pal4"),
            "engine": np.full(case_index.size, "reference"),
            "compute_unit": np.full(case_index.size, "REFERENCE"),
            "attention": np.where(case_index % 2 == 0, "SPLIT_EINSUM", "ORIGINAL"),
            "quantization": np.where(case_index % 2 == 0, "fp16", "pal4"),
            "resolution": np.full(case_index.size, "512"),
            "steps": np.full(case_index.size, str(steps)),
            "scheduler": np.full(case_index.size, "euler"),
            "guidance": np.full(case_index.size, "5.0"),
            "batch": np.full(case_index.size, "2"),
            "reduce_memory": np.full(case_index.size, "false"),
            "refiner": np.full(case_index.size, "false"),
            "strength": np.full(case_index.size, ""),
            "seed": (case_index % 7).astype(str),
            "phase": tiled["phase"],
            "repeat": tiled["repeat"],
            "stage": tiled["stage"],
            "step": tiled["step"],
            "metric": tiled["metric"],
            "value": values.astype(str),
            "unit": tiled["unit"],
            "status": np.full(case_index.size, "ok"),
            "error": np.full(case_index.size, ""),
            "valid": np.full(case_index.size, "true"),
            "device": np.full(case_index.size, "Mac14,9"),
            "chip": np.full(case_index.size, "Apple M2 Pro"),
            "os": np.full(case_index.size, "macOS 14.5" if run % 3 else "macOS 14.6"),  # runs differ, as over months
            "host": np.full(case_index.size, "ci-mac"),
            "timestamp": np.full(case_index.size, _started(run_id)),
        }
        frame = pd.DataFrame({name: columns.get(name, "") for name in COLUMN_NAMES})  # others: empty
        texts[run_id] = frame.to_csv(index=False, lineterminator="\n")
    return texts


def _case_template(repeats: int, steps: int) -> dict[str, np.ndarray]:
    """The rows of one case as column arrays (strings, as in the file) plus their base values."""
    rows: list[tuple[str, str, str, str, str, str, float]] = [
        ("cold", "", "load/unet", "", "latency", "s", 1.5),
        ("cold", "", "first_predict/unet", "", "latency", "s", 0.5),
    ]
    for repeat in range(repeats):
        r = str(repeat)
        rows += [("measured", r, stage, "", "latency", "s", BASE_SECONDS[stage])
                 for stage in ("tokenize", "text_encoder", "text_encoder_2")]  # fmt: skip
        for step in range(steps):
            rows += [("measured", r, "unet", str(step), "latency", "s", 0.1),
                     ("measured", r, "scheduler", str(step), "latency", "s", 0.002)]  # fmt: skip
        rows += [("measured", r, "vae_decoder", "", "latency", "s", 0.08),
                 ("measured", r, "end_to_end", "", "latency", "s", 2.2),
                 ("measured", r, "vae_decoder", "", "peak_rss", "bytes", 5e8)]  # fmt: skip
    rows += [("", "", "process", "", "peak_rss", "bytes", 6e8), ("", "", OUTCOME_STAGE, "", "wall_time", "s", 30.0)]
    names = ("phase", "repeat", "stage", "step", "metric", "unit")
    template = {name: np.array([row[i] for row in rows]) for i, name in enumerate(names)}
    template["base"] = np.array([row[6] for row in rows], dtype=np.float64)
    return template


def write_tree(root: Path, texts: Mapping[str, str]) -> int:
    """Write `million_row_csv` output as run folders under `root`; returns the number of data rows."""
    total = 0
    for run_id, text in texts.items():
        run_dir = root / run_id
        run_dir.mkdir(parents=True)
        (run_dir / RESULTS_FILE).write_text(text)
        total += text.count("\n") - 1
    return total


