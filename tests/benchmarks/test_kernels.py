"""Speed of the reference engine's heaviest kernels at the sizes a small SDXL-architecture UNet uses.

Timed run (each benchmark also times torch's equivalent op at the same thread count, interleaved
with the engine's rounds so both see the same machine load, and reports the ratio):
    pytest tests/benchmarks/test_kernels.py --benchmark-only --benchmark-enable
In the normal test run (`--benchmark-disable`) each benchmark calls its kernel once, untimed, and
checks the result against torch (or numpy where torch has no such op), so the benchmarks keep
working and stay correct.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.engines.reference.graph import Operation, TensorType, Value
from bench.engines.reference.ops import get_kernel

torch = pytest.importorskip("torch")

F32 = np.float32
I32 = np.int32
ROUNDS = 7


def _op(op_type: str) -> Operation:
    return Operation(op_type, f"bench_{op_type}", {}, (Value("out", TensorType("fp32", ())),))


def _engine_threads() -> int:
    """The kernel threads the engine computes with (BLAS itself runs single-threaded under them)."""
    from bench.engines.reference.ops import _util

    return _util.num_threads()


def run_benchmark(benchmark, op_type: str, inputs: dict[str, Any], torch_fn: Callable[[], Any], atol: float = 1e-4) -> None:
    """Time kernel `op_type` on `inputs`; time `torch_fn` before each round; compare the outputs."""
    kernel = get_kernel(op_type).fn
    op = _op(op_type)
    before = torch.get_num_threads()
    torch.set_num_threads(_engine_threads())
    torch_seconds: list[float] = []

    def time_torch() -> None:
        start = time.perf_counter()
        torch_fn()
        torch_seconds.append(time.perf_counter() - start)

    try:
        with torch.inference_mode():
            # disabled (normal test run): pedantic calls the kernel once, untimed
            result = benchmark.pedantic(kernel, args=(op,), kwargs=inputs, setup=time_torch, rounds=ROUNDS, warmup_rounds=1)
            expected = torch_fn()
    finally:
        torch.set_num_threads(before)
    expected = expected.numpy() if hasattr(expected, "numpy") else np.asarray(expected)
    result = np.asarray(result)
    assert result.dtype == F32 and result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=atol)
    if not benchmark.disabled:
        engine = benchmark.stats.stats.median
        reference = statistics.median(torch_seconds[1:])
        benchmark.extra_info.update(
            {
                "torch_median_ms": round(reference * 1e3, 3),
                "engine_median_ms": round(engine * 1e3, 3),
                "ratio_to_torch": round(engine / reference, 2),
                "threads": _engine_threads(),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )


CONVS = [
    # (x shape, C_out, kernel, stride): the UNet's resnet convs, conv_in / conv_out and a downsample
    ((2, 64, 32, 32), 64, 3, 1),
    ((2, 128, 16, 16), 128, 3, 1),
    ((2, 192, 32, 32), 64, 3, 1),
    ((2, 4, 32, 32), 64, 3, 1),
    ((2, 64, 32, 32), 64, 3, 2),
    ((2, 256, 16, 16), 128, 1, 1),
]


@pytest.mark.parametrize("x_shape, c_out, k, stride", CONVS, ids=[f"{s[1]}to{c}-{s[2]}px-k{k}s{st}" for s, c, k, st in CONVS])
def test_conv(benchmark, x_shape, c_out, k, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(F32)
    w = (rng.standard_normal((c_out, x_shape[1], k, k)) * 0.05).astype(F32)
    b = rng.standard_normal(c_out).astype(F32)
    pad = k // 2
    inputs = {"x": x, "weight": w, "bias": b, "strides": np.array([stride, stride], I32), "pad_type": "custom",
                  "pad": np.array([pad] * 4, I32)}
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    run_benchmark(benchmark, "conv", inputs, lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad))


@pytest.mark.parametrize("rows, d_in, d_out", [(512, 128, 128), (512, 128, 1024), (512, 512, 128)])
def test_linear(benchmark, rows, d_in, d_out):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, rows // 2, d_in)).astype(F32)
    w = (rng.standard_normal((d_out, d_in)) * 0.05).astype(F32)
    b = rng.standard_normal(d_out).astype(F32)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    run_benchmark(benchmark, "linear", {"x": x, "weight": w, "bias": b}, lambda: torch.nn.functional.linear(xt, wt, bt))


def test_attention_matmul(benchmark):
    rng = np.random.default_rng(2)
    q = rng.standard_normal((2, 8, 1024, 40)).astype(F32)
    k = rng.standard_normal((2, 8, 1024, 40)).astype(F32)
    qt, kt = torch.from_numpy(q), torch.from_numpy(k)
    inputs = {"x": q, "y": k, "transpose_y": np.bool_(True)}
    run_benchmark(benchmark, "matmul", inputs, lambda: qt @ kt.transpose(-1, -2), atol=1e-3)


def test_split_einsum_scores(benchmark):
    # Apple's SPLIT_EINSUM attention, one head: q (B, d, 1, Sq), k (B, Sk, 1, d) -> (B, Sk, 1, Sq)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 64, 1, 1024)).astype(F32)
    k = rng.standard_normal((2, 1024, 1, 64)).astype(F32)
    qt, kt = torch.from_numpy(q), torch.from_numpy(k)
    inputs = {"values": [q, k], "equation": "bchq,bkhc->bkhq"}
    run_benchmark(benchmark, "einsum", inputs, lambda: torch.einsum("bchq,bkhc->bkhq", qt, kt), atol=1e-3)


def test_sdpa(benchmark):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 2, 1024, 32)).astype(F32) for _ in range(3))
    qt, kt, vt = (torch.from_numpy(a) for a in (q, k, v))
    run_benchmark(benchmark, "scaled_dot_product_attention", {"query": q, "key": k, "value": v},
                  lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt))


@pytest.mark.parametrize("shape, axis", [((2, 2, 256, 256), -1), ((2, 4, 1024, 1024), -1), ((2, 1024, 1, 1024), 1)],
                         ids=["scores-256", "scores-1024", "split-einsum-axis1"])
def test_softmax(benchmark, shape, axis):
    x = (np.random.default_rng(5).standard_normal(shape) * 3).astype(F32)
    xt = torch.from_numpy(x)
    run_benchmark(benchmark, "softmax", {"x": x, "axis": np.int32(axis)}, lambda: torch.softmax(xt, axis), atol=1e-6)


@pytest.mark.parametrize("op_type", ["gelu", "silu", "sigmoid"])
def test_activation(benchmark, op_type):
    x = (np.random.default_rng(6).standard_normal((2, 256, 1024)) * 3).astype(F32)
    xt = torch.from_numpy(x)
    fn = {"gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid}[op_type]
    run_benchmark(benchmark, op_type, {"x": x}, lambda: fn(xt), atol=2e-6)


@pytest.mark.parametrize("shape, axes", [((2, 1024, 128), [-1]), ((2, 128, 1, 1024), [1])], ids=["tokens-last", "apple-channels"])
def test_layer_norm(benchmark, shape, axes):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(F32)
    c = shape[axes[0]]
    gamma, beta = rng.standard_normal(c).astype(F32), rng.standard_normal(c).astype(F32)
    inputs = {"x": x, "axes": np.array(axes, I32), "gamma": gamma, "beta": beta, "epsilon": np.float32(1e-5)}
    if axes == [-1]:
        xt, gt, bt = (torch.from_numpy(a) for a in (x, gamma, beta))
        reference = lambda: torch.nn.functional.layer_norm(xt, (c,), gt, bt)
    else:
        xt = torch.from_numpy(x).permute(0, 2, 3, 1)
        gt, bt = torch.from_numpy(gamma), torch.from_numpy(beta)
        reference = lambda: torch.nn.functional.layer_norm(xt, (c,), gt, bt).permute(0, 3, 1, 2)
    run_benchmark(benchmark, "layer_norm", inputs, reference)


def test_lut_decompression_at_load(benchmark):
    """4-bit iOS18 per-grouped-channel palettization of a 1280 x 1280 x 3 x 3 conv weight (load-time work)."""
    rng = np.random.default_rng(8)
    indices = rng.integers(0, 16, size=(1280, 1280, 3, 3)).astype(np.uint8)
    lut = rng.standard_normal((80, 1, 1, 1, 16, 1)).astype(F32)
    kernel = get_kernel("constexpr_lut_to_dense").fn
    op = _op("constexpr_lut_to_dense")
    out = benchmark.pedantic(kernel, args=(op,), kwargs={"indices": indices, "lut": lut}, rounds=3, warmup_rounds=1)
    group = np.arange(1280) // 16
    np.testing.assert_array_equal(out[:, 7, 1, 2], lut[group, 0, 0, 0, indices[:, 7, 1, 2], 0])
    assert out.dtype == F32 and out.shape == indices.shape
