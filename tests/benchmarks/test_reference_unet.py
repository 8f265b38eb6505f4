"""Speed and memory of one UNet call on the reference engine, against torch eager on the same weights.

Timed run (checks the speed target and reports the figures):
    pytest tests/benchmarks/test_reference_unet.py --benchmark-only --benchmark-enable
In the normal test run (`--benchmark-disable`) the benchmark calls the engine once, untimed, and
checks its output against torch; the memory and profiler tests run there too (and are skipped by
`--benchmark-only`; `--benchmark-enable` alone runs everything). The larger UNet runs only in timed runs.

Reported in `benchmark.extra_info`: engine / torch median ratio, FLOPs of the program's matrix ops
(counted from the spec, not by the engine), the engine's and torch's GFLOP/s, the GFLOP/s of the
engine's conv and linear kernel families (from its profiler), and numpy's float32 GEMM GFLOP/s
measured in the same run as the ceiling a numpy interpreter can reach. Three UNets: blocks 64/128,
128/256, and SDXL's own widths 320/640 (`unet-sdxl-320-640`, SDXL base's first two levels).
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc

import numpy as np
import psutil
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from mlprogram_stats import MATRIX_OPS, program_stats  # noqa: E402 (after the importorskip guards)
from torch_oracles import UNetConfig, convert, trace  # noqa: E402

from bench.models.quality import psnr  # noqa: E402

pytestmark = pytest.mark.torch

#: Issue targets: one UNet call on the reference engine takes at most this many times torch eager
#: (the small UNets' bound dates from the first engine; at SDXL's widths the engine must beat torch).
MAX_RATIO_TO_TORCH = {"unet-64-128": 2.0, "unet-128-256": 2.0, "unet-sdxl-320-640": 1.0}
#: Issue target at SDXL's widths: the conv and linear kernel families reach this share of numpy's
#: SGEMM GFLOP/s measured in the same run (conv FLOPs counted as the direct convolution's).
MIN_SHARE_OF_SGEMM_PEAK = {"unet-sdxl-320-640": 0.5}
#: Issue target: peak memory of a call under this many times (weights + largest live activation set).
MAX_MEMORY_FACTOR = 3.0
ROUNDS = 5



def bench_unet(name: str, block_out_channels: tuple[int, int], heads: tuple[int, int], width: int) -> UNetConfig:
    """A stock diffusers SDXL-architecture UNet (text_time add-embedding, linear projections) at a
    32x32 latent, two resnets per level and (1, 2) transformer layers, as SDXL's own blocks have."""
    return UNetConfig(
        name,
        block_out_channels=block_out_channels,
        attention_head_dim=heads,
        cross_attention_dim=width,
        text_embeds_dim=width,
        layers_per_block=2,
        transformer_layers_per_block=(1, 2),
        norm_num_groups=32,
        addition_time_embed_dim=32,
        latent=32,
    )


def sdxl_width_unet() -> UNetConfig:
    """The first two levels of SDXL base's UNet at their real widths: blocks (320, 640), head dim 64
    (5 and 10 heads), 2048-wide cross-attention, SDXL's add-embedding (256-wide time-id sinusoids,
    2816 projection inputs = 1280 pooled text + 6 x 256), two transformer layers at 640 as SDXL has,
    at a 32x32 latent, batch 2."""
    return UNetConfig(
        "unet-sdxl-320-640",
        block_out_channels=(320, 640),
        attention_head_dim=(5, 10),
        cross_attention_dim=2048,
        text_embeds_dim=1280,
        layers_per_block=2,
        transformer_layers_per_block=(1, 2),
        norm_num_groups=32,
        addition_time_embed_dim=256,
        latent=32,
    )


UNETS = [
    pytest.param(bench_unet("unet-64-128", (64, 128), heads=(1, 2), width=128), id="unet-64-128"),
    pytest.param(bench_unet("unet-128-256", (128, 256), heads=(2, 4), width=256), id="unet-128-256", marks=pytest.mark.slow),
    pytest.param(sdxl_width_unet(), id="unet-sdxl-320-640", marks=pytest.mark.slow),
]
#: Too slow to convert and run in the untimed default test run; the smallest UNet covers that.
TIMED_ONLY = {"unet-128-256", "unet-sdxl-320-640"}


@pytest.fixture(scope="module", params=UNETS)
def unet(request, tmp_path_factory):
    """A UNet config with its eager torch module, converted float32 .mlpackage, inputs and spec statistics."""
    config: UNetConfig = request.param
    untimed = request.config.getoption("benchmark_disable") and not request.config.getoption("benchmark_enable")
    if config.name in TIMED_ONLY and untimed:
        pytest.skip(f"{config.name} runs only in timed runs (--benchmark-enable); the smaller UNet covers the untimed run")
    traced = trace(config)
    converted = convert(traced, "fp32", tmp_path_factory.mktemp("bench-unet"))
    return config, traced.eager, converted.inputs, converted.path, program_stats(converted.path)


@pytest.fixture
def same_threads():
    """Pin the engine and torch to one thread count, the engine's own rule for a lone process (an
    explicit BENCH_NUM_THREADS / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else the CPUs allowed), so
    the sharing rule cannot change it mid-benchmark; restore both afterwards."""
    from bench.engines.reference.threads import configure_threads, plan_threads

    plan = plan_threads(processes=1)
    before = torch.get_num_threads()
    configure_threads(plan.threads)
    torch.set_num_threads(plan.threads)
    yield plan.threads, plan.source
    torch.set_num_threads(before)
    configure_threads(None)


def numpy_sgemm_gflops(threads: int, n: int = 2048, repeats: int = 3) -> float:
    """Best-of-`repeats` GFLOP/s of one n x n x n float32 matrix product in numpy with its BLAS at
    `threads` threads (the engine holds BLAS at one thread and splits products itself, so the
    ceiling is set here for the duration of the measurement)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm the BLAS threads and pages
        best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_unet_call_speed_vs_torch(benchmark, unet, same_threads):
    from bench.engines import reference

    config, module, inputs, path, stats = unet
    threads, thread_source = same_threads
    model = reference.load(path, precision="fp32")
    torch_inputs = tuple(torch.from_numpy(v) for v in inputs.values())

    def torch_call():
        with torch.inference_mode():
            return module(*torch_inputs)

    torch_seconds: list[float] = []

    def time_torch_between_rounds():
        # torch eager runs right before each engine round, so both see the same machine load
        torch_seconds.append(_seconds(torch_call))

    cpu_before = psutil.cpu_times()
    outputs = benchmark.pedantic(
        model.predict, args=(inputs,), setup=time_torch_between_rounds, rounds=ROUNDS, warmup_rounds=1
    )
    steal = steal_share(cpu_before, psutil.cpu_times())
    expected = torch_call().numpy()
    quality = psnr(outputs["noise_pred"], expected)  # apple/ml-stable-diffusion's compute_psnr
    assert np.isfinite(outputs["noise_pred"]).all() and quality >= 60.0, f"{config.name}: engine output PSNR {quality:.1f} dB against torch (need >= 60)"

    benchmark.extra_info.update(
        {
            "unet": config.name,
            "latent": f"{config.batch}x4x{config.latent}x{config.latent}",
            "threads": threads,
            "threads_from": thread_source,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "cpu_steal_share": round(steal, 3),
            "matrix_gflop": round(stats.flops / 1e9, 3),
            "psnr_vs_torch_db": round(quality, 1),
        }
    )
    if benchmark.disabled:  # untimed smoke run of the normal test suite
        return

    engine_median = benchmark.stats.stats.median
    torch_median = statistics.median(torch_seconds[1:])  # the first ran before the warm-up round
    ratio = engine_median / torch_median
    gemm_peak = numpy_sgemm_gflops(threads)
    profile = model.profile(inputs)
    by_type = profile.by_op_type().head(6)
    families = family_gflops(profile, ("conv", "linear"))
    max_ratio = MAX_RATIO_TO_TORCH[config.name]
    benchmark.extra_info.update(
        {
            "engine_time_share_top_ops": {row.op_type: round(float(row.share), 3) for row in by_type.itertuples()},
            "family_gflops": {name: round(value, 1) for name, value in families.items()},
            "family_share_of_sgemm_peak": {name: round(value / gemm_peak, 2) for name, value in families.items()},
            "engine_median_s": round(engine_median, 4),
            "torch_median_s": round(torch_median, 4),
            "ratio_engine_to_torch": round(ratio, 2),
            "engine_gflops": round(stats.flops / engine_median / 1e9, 1),
            "torch_gflops": round(stats.flops / torch_median / 1e9, 1),
            "numpy_sgemm_peak_gflops": round(gemm_peak, 1),
        }
    )
    print(
        f"\n{config.name}: engine {engine_median * 1e3:.1f} ms, torch eager {torch_median * 1e3:.1f} ms, "
        f"ratio {ratio:.2f} (target <= {max_ratio}); engine {stats.flops / engine_median / 1e9:.1f} "
        f"GFLOP/s, torch {stats.flops / torch_median / 1e9:.1f} GFLOP/s, numpy sgemm peak {gemm_peak:.1f} "
        f"GFLOP/s; {threads} threads ({thread_source}); load average {os.getloadavg()[0]:.2f}; CPU time stolen by "
        f"the hypervisor {steal:.1%}; engine time by "
        f"op type: {benchmark.extra_info['engine_time_share_top_ops']}; GFLOP/s by kernel family: "
        f"{benchmark.extra_info['family_gflops']}"
    )
    assert ratio <= max_ratio, (
        f"{config.name}: reference engine {engine_median * 1e3:.1f} ms per call is {ratio:.2f}x torch eager "
        f"({torch_median * 1e3:.1f} ms); target <= {max_ratio}x"
    )
    min_share = MIN_SHARE_OF_SGEMM_PEAK.get(config.name)
    if min_share is not None:
        for name, value in families.items():
            assert value >= min_share * gemm_peak, (
                f"{config.name}: the {name} kernels ran at {value:.1f} GFLOP/s, under {min_share} x numpy's "
                f"SGEMM peak of {gemm_peak:.1f} GFLOP/s measured in this run"
            )


def steal_share(before, after) -> float:
    """Share of the CPU time between two `psutil.cpu_times()` that a hypervisor gave to other guests.

    On this shared VM the engine's ratio to torch rose from 0.83 to 0.96 in a window where 4 % of
    CPU time was stolen (its kernel threads hand work to each other, and a descheduled one stalls
    the other), so a timed run records it beside the load average."""
    total = sum(after) - sum(before)
    stolen = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return stolen / total if total > 0 else 0.0


def family_gflops(profile, families: tuple[str, ...]) -> dict[str, float]:
    """GFLOP/s of each kernel family over one profiled call: its FLOPs over its summed op time."""
    frame = profile.by_op()
    rates = {}
    for name in families:
        rows = frame[frame["family"] == name]
        seconds = float(rows["seconds"].sum())
        rates[name] = float(rows["flops"].sum()) / seconds / 1e9 if seconds > 0 else 0.0
    return rates


def test_unet_call_frees_dead_intermediates(unet, record_property):
    """Peak traced numpy memory of a call stays under 3 x (weights + largest live activation set).

    tracemalloc sees numpy's array allocations (numpy reports them to it) and nothing of torch's,
    so the torch module living in this process does not blur the figure (RSS would, and after a
    warm-up call the allocator's retained pages hide a call's growth). Weights the engine maps
    from weight.bin rather than copies are not in the traced figure either. The bound comes from the
    program's own liveness (mlprogram_stats), not from the engine. Keeping every intermediate alive
    would need `total_activation_bytes`, far above the bound for a UNet.
    """
    from bench.engines import reference

    config, _module, inputs, path, stats = unet
    bound = MAX_MEMORY_FACTOR * (stats.weight_bytes + stats.peak_live_bytes)
    # an engine that kept every intermediate alive would break the bound, else the check means nothing
    assert stats.weight_bytes + stats.total_activation_bytes > bound

    tracemalloc.start()
    try:
        model = reference.load(path, precision="fp32")
        model.predict(inputs)  # first call: anything cached lazily is allocated now
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        model.predict(inputs)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    figures = {
        "weights_mb": stats.weight_bytes / 1e6,
        "peak_live_mb": stats.peak_live_bytes / 1e6,
        "all_activations_mb": stats.total_activation_bytes / 1e6,
        "traced_before_call_mb": before / 1e6,
        "traced_peak_mb": peak / 1e6,
        "traced_increase_mb": (peak - before) / 1e6,
        "traced_after_call_mb": after / 1e6,
        "bound_mb": bound / 1e6,
    }
    for key, value in figures.items():
        record_property(key, round(value, 2))
    print(f"\n{config.name} memory: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))
    assert peak <= bound, (
        f"{config.name}: a UNet call peaked at {peak / 1e6:.1f} MB of numpy memory, over "
        f"{MAX_MEMORY_FACTOR} x (weights {stats.weight_bytes / 1e6:.1f} MB + largest live set "
        f"{stats.peak_live_bytes / 1e6:.1f} MB at {stats.peak_live_op}) = {bound / 1e6:.1f} MB"
    )
    # a call must not leave its intermediates behind either
    assert after - before <= stats.peak_live_bytes, (
        f"{config.name}: {(after - before) / 1e6:.1f} MB more numpy memory held after the call than before"
    )


def test_profiler_flops_match_the_program(unet):
    """The engine profiler's FLOPs for matrix ops agree with an independent count from the spec."""
    from bench.engines import reference

    config, _module, inputs, path, stats = unet
    model = reference.load(path, precision="fp32")
    frame = model.profile(inputs).by_op_type()
    for op_type in MATRIX_OPS:
        expected = stats.matrix_flops.get(op_type, 0.0)
        rows = frame[frame["op_type"] == op_type]
        got = float(rows["flops"].sum()) if len(rows) else 0.0
        assert got == pytest.approx(expected, rel=0.02), (
            f"{config.name}: profiler counts {got / 1e9:.4f} GFLOP for {op_type}, the spec gives {expected / 1e9:.4f}"
        )


#: Issue target: fp16 mode (every op's output rounded through float16) costs at most this many times fp32.
MAX_FP16_TO_FP32 = 1.5
#: Rounds of the fp16 / fp32 comparison (the calls alternate). More than the speed test's: one window
#: of CPU steal moved a five-round median ratio on the 128/256 UNet from 1.29 to 1.53 in back-to-back
#: runs of this benchmark.
FP16_ROUNDS = 9


def test_fp16_mode_costs_little_over_fp32(benchmark, unet, same_threads):
    """One call in fp16 mode against one in fp32 on the same model, alternating, in one run."""
    from bench.engines import reference

    config, _module, inputs, path, _stats = unet
    fp32 = reference.load(path, precision="fp32")
    fp16 = reference.load(path, precision="fp16")
    fp32_seconds: list[float] = []

    def time_fp32_between_rounds():
        fp32_seconds.append(_seconds(lambda: fp32.predict(inputs)))

    cpu_before = psutil.cpu_times()
    out16 = benchmark.pedantic(
        fp16.predict, args=(inputs,), setup=time_fp32_between_rounds, rounds=FP16_ROUNDS, warmup_rounds=1
    )
    steal = steal_share(cpu_before, psutil.cpu_times())
    assert fp16.last_numerics is not None and fp16.last_numerics.ok, fp16.last_numerics.describe()
    quality = psnr(out16["noise_pred"].astype(np.float32), fp32.predict(inputs)["noise_pred"])
    assert quality >= 35.0, f"{config.name}: fp16 mode output PSNR {quality:.1f} dB against fp32 (need >= 35)"
    if benchmark.disabled:
        return
    fp16_median = benchmark.stats.stats.median
    fp32_median = statistics.median(fp32_seconds[1:])
    ratio = fp16_median / fp32_median
    benchmark.extra_info.update(
        {"unet": config.name, "fp16_median_s": round(fp16_median, 4), "fp32_median_s": round(fp32_median, 4),
         "ratio_fp16_to_fp32": round(ratio, 2), "load_average_1min": round(os.getloadavg()[0], 2),
         "cpu_steal_share": round(steal, 3)}
    )
    print(f"\n{config.name}: fp16 mode {fp16_median * 1e3:.1f} ms, fp32 {fp32_median * 1e3:.1f} ms, ratio {ratio:.2f}; "
          f"CPU time stolen by the hypervisor {steal:.1%}")
    assert ratio <= MAX_FP16_TO_FP32, (
        f"{config.name}: fp16 mode {fp16_median * 1e3:.1f} ms per call is {ratio:.2f}x fp32 "
        f"({fp32_median * 1e3:.1f} ms); target <= {MAX_FP16_TO_FP32}x"
    )
