"""Scale: `load_results` plus the report's summaries (`case_summary`, `stage_summary`) on a results
tree of a million rows in the real schema. Target: under 10 s on the 2-core development VM.

Timed with `python -m pytest tests/benchmarks/test_results_scale.py --benchmark-only --benchmark-enable -s`
(it prints the figure and the peak memory of a fresh process doing the same work); in the normal test
run it executes once, untimed, on a small tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_factory import million_row_csv, write_tree  # noqa: E402

from bench.report.summary import case_summary, stage_summary  # noqa: E402
from bench.store import load_results  # noqa: E402

TARGET_SECONDS = 10.0
FULL_ROWS = 1_000_000

_PEAK_SCRIPT = """
import resource, sys, time
from bench.store import load_results
from bench.report.summary import case_summary, stage_summary
start, cpu = time.perf_counter(), time.process_time()
frame = load_results(sys.argv[1])
cases, stages = case_summary(frame), stage_summary(frame)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, len(frame))
"""


def load_and_summarise(root: Path) -> tuple[int, int, int]:
    frame = load_results(root)
    return len(frame), len(case_summary(frame)), len(stage_summary(frame))


def test_million_rows_load_and_summary(benchmark, tmp_path: Path) -> None:
    rows = 20_000 if benchmark.disabled else FULL_ROWS
    written = write_tree(tmp_path / "results", million_row_csv(rows, cases=200 if rows == FULL_ROWS else 20))
    assert abs(written - rows) / rows < 0.1
    loaded, cases, stages = benchmark.pedantic(load_and_summarise, args=(tmp_path / "results",), rounds=3, iterations=1)
    assert loaded == written and cases > 0 and stages > cases
    if benchmark.disabled:
        return
    median = benchmark.stats.stats.median
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(tmp_path / "results")], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    seconds, cpu_seconds, peak_bytes, _ = done.stdout.split()
    benchmark.extra_info.update(rows=written, median_s=round(median, 2), fresh_process_s=round(float(seconds), 2),
                                fresh_process_cpu_s=round(float(cpu_seconds), 2),
                                peak_rss_mib=round(int(peak_bytes) / 2**20))  # fmt: skip
    print(f"\n{written} rows: load_results + case_summary + stage_summary median {median:.2f} s; a fresh process: "
          f"{float(seconds):.2f} s wall, {float(cpu_seconds):.2f} s CPU (all threads; what an idle machine's wall time "
          f"approaches when other jobs share the cores), peak RSS {int(peak_bytes) / 2**20:.0f} MiB")  # fmt: skip
    assert median < TARGET_SECONDS, f"{median:.1f} s for {written} rows (target < {TARGET_SECONDS:.0f} s)"
