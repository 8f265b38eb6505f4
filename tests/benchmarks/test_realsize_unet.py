"""One call of a UNet at SDXL base's true size on the reference engine: time, GFLOP/s, peak memory.

Not in the default test run (minutes of CPU, ~16 GB of memory, a 5 GB model file); run it with

    BENCH_RUN_REALSIZE=1 pytest tests/benchmarks/test_realsize_unet.py -s -p no:cacheprovider

The UNet is SDXL base's configuration (blocks 320/640/1280, transformer depths 0/2/10, 2048-wide
cross-attention, SDXL's add-embedding), ORIGINAL attention, batch 2, 96x96 latents (768x768), with
random float16 weights written by `bench.models.tiny.realsize` into the models folder on first use
(reused afterwards; BENCH_REALSIZE_MODEL points at another copy). The call runs in a child process
so its memory is its own: a sampler thread reads the child's RSS every 20 ms.

Target: peak RSS of the call under 2.5 x the float16 weight bytes + the largest live activation set
(as the engine holds activations: float32, twice the program's float16 bytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlprogram_stats import program_stats

pytestmark = [
    pytest.mark.realsize,
    pytest.mark.skipif(os.environ.get("BENCH_RUN_REALSIZE") != "1", reason="real-size UNet: set BENCH_RUN_REALSIZE=1"),
]

MAX_MEMORY_FACTOR = 2.5
LATENT = 96

CHILD = """
import json, resource, sys, threading, time
import psutil
from bench.commands.profile import random_inputs
from bench.engines import reference

process = psutil.Process()
peak = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.02)
started = time.perf_counter()
model = reference.load(sys.argv[1], precision="fp16")
load_s = time.perf_counter() - started
inputs = random_inputs(model)
rss_loaded = process.memory_info().rss
load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
thread = threading.Thread(target=sample, daemon=True)
thread.start()
result = model.profile(inputs)
stop.set()
thread.join()
families = {}
for op in result.ops:
    f = families.setdefault(op.family, [0.0, 0.0])
    f[0] += op.seconds
    f[1] += op.flops or 0.0
top = result.by_op_type().head(8)
print(json.dumps({
    "load_s": load_s, "call_s": result.wall_seconds, "rss_loaded": rss_loaded, "call_peak_rss": max(peak[0], rss_loaded),
    "load_peak_rss": load_peak, "flops": sum(f[1] for f in families.values()),
    "family_gflops": {k: f[1] / f[0] / 1e9 for k, f in families.items() if f[0] > 0 and f[1] > 0},
    "top_ops": [[r.op_type, round(float(r.seconds), 2), None if r.gflops_per_s != r.gflops_per_s else round(float(r.gflops_per_s), 1)]
                for r in top.itertuples()],
    "numerics_ok": model.last_numerics is None or model.last_numerics.ok,
}))
"""


@pytest.fixture(scope="module")
def model_path() -> Path:
    given = os.environ.get("BENCH_REALSIZE_MODEL")
    if given:
        return Path(given)
    from bench.models.paths import models_dir
    from bench.models.tiny.realsize import write_sdxl_base_unet

    path = models_dir() / "realsize" / f"sdxl-base-unet-{LATENT}.mlpackage"
    if not (path / "Manifest.json").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_sdxl_base_unet(path, latent=LATENT)
    return path


def test_sdxl_base_unet_call_time_and_memory(model_path: Path, record_property):
    stats = program_stats(model_path)
    weight_file = next(model_path.rglob("weight.bin"))
    weight_bytes = weight_file.stat().st_size
    live_bytes = 2 * stats.peak_live_bytes  # float32 in the engine; the program declares float16
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.run([sys.executable, "-c", CHILD, str(model_path)], capture_output=True, env=env, timeout=7200)
    assert child.returncode == 0, child.stderr.decode()[-3000:]
    figures = json.loads(child.stdout.decode().strip().splitlines()[-1])
    bound = MAX_MEMORY_FACTOR * weight_bytes + live_bytes
    report = {
        "weight_bytes_fp16_gb": weight_bytes / 1e9,
        "largest_live_set_fp32_gb": live_bytes / 1e9,
        "load_s": figures["load_s"],
        "rss_after_load_gb": figures["rss_loaded"] / 1e9,
        "load_peak_rss_gb": figures["load_peak_rss"] / 1e9,
        "call_s": figures["call_s"],
        "call_peak_rss_gb": figures["call_peak_rss"] / 1e9,
        "bound_gb": bound / 1e9,
        "tflop": figures["flops"] / 1e12,
        "gflops": figures["flops"] / figures["call_s"] / 1e9,
    }
    for key, value in report.items():
        record_property(key, round(value, 2))
    print("\nSDXL base UNet, 96x96, batch 2, fp16 weights: " + ", ".join(f"{k} {v:.2f}" for k, v in report.items()))
    print(f"GFLOP/s by family: { {k: round(v, 1) for k, v in figures['family_gflops'].items()} }")
    print(f"top op types (type, s, GFLOP/s): {figures['top_ops']}")
    assert figures["numerics_ok"], "the call produced inf / nan in fp16 mode"
    assert figures["call_peak_rss"] <= bound, (
        f"peak RSS {figures['call_peak_rss'] / 1e9:.2f} GB during the call, over {MAX_MEMORY_FACTOR} x fp16 weights "
        f"{weight_bytes / 1e9:.2f} GB + largest live set {live_bytes / 1e9:.2f} GB = {bound / 1e9:.2f} GB"
    )
