"""Normalization kernels against the MIL formulas written out here in float64."""

from __future__ import annotations

import numpy as np
import pytest

F32 = np.float32
I32 = np.int32


def ref_layer_norm(x, axes, gamma, beta, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((2, 77, 32), [-1]),  # text encoders
        ((2, 32, 1, 16), [1]),  # Apple's UNet layout (B, C, 1, S), normalized over C
        ((2, 3, 4, 5), [2, 3]),
        ((2, 3, 4, 5), [1, 3]),  # non-contiguous axes
        ((3, 4), None),  # default: all axes
    ],
)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(run, rng, shape, axes, affine):
    x = (rng.standard_normal(shape) * 3 + 5).astype(F32)
    norm_axes = tuple(range(len(shape))) if axes is None else tuple(a % len(shape) for a in axes)
    pshape = tuple(shape[i] for i in norm_axes)
    gamma = rng.standard_normal(pshape).astype(F32) if affine else None
    beta = rng.standard_normal(pshape).astype(F32) if affine else None
    kwargs = {}
    if axes is not None:
        kwargs["axes"] = np.array(axes, I32)
    if affine:
        kwargs.update(gamma=gamma, beta=beta)
    out = run("layer_norm", x=x, **kwargs)
    assert out.dtype == F32
    np.testing.assert_allclose(out, ref_layer_norm(x, norm_axes, gamma, beta, 1e-5), rtol=1e-4, atol=1e-5)


def test_layer_norm_epsilon_matters_for_constant_rows(run):
    x = np.ones((2, 8), F32)
    out = run("layer_norm", x=x, axes=np.array([1], I32), epsilon=np.float32(1e-3))
    np.testing.assert_array_equal(out, 0)
    x = np.array([[0.0, 2e-3]], F32)
    out = run("layer_norm", x=x, axes=np.array([-1], I32), epsilon=np.float32(1e-6))
    np.testing.assert_allclose(out, [[-1e-3 / np.sqrt(1e-6 + 1e-6), 1e-3 / np.sqrt(2e-6)]], rtol=1e-4)


def test_batch_norm(run, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    mean, var = rng.standard_normal(3).astype(F32), rng.uniform(0.5, 2, 3).astype(F32)
    gamma, beta = rng.standard_normal(3).astype(F32), rng.standard_normal(3).astype(F32)
    c = lambda v: v.reshape(1, 3, 1, 1).astype(np.float64)
    expected = c(gamma) * (x - c(mean)) / np.sqrt(c(var) + 1e-5) + c(beta)
    out = run("batch_norm", x=x, mean=mean, variance=var, gamma=gamma, beta=beta)
    assert out.dtype == F32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    plain = run("batch_norm", x=x, mean=mean, variance=var, epsilon=np.float32(0.1))
    np.testing.assert_allclose(plain, (x - c(mean)) / np.sqrt(c(var) + 0.1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7)])
def test_instance_norm(run, rng, shape):
    x = (rng.standard_normal(shape) + 2).astype(F32)
    gamma, beta = rng.standard_normal(3).astype(F32), rng.standard_normal(3).astype(F32)
    axes = tuple(range(2, len(shape)))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    c = lambda v: v.reshape((1, 3) + (1,) * (len(shape) - 2))
    expected = c(gamma) * (x64 - mean) / np.sqrt(var + 1e-5) + c(beta)
    np.testing.assert_allclose(run("instance_norm", x=x, gamma=gamma, beta=beta), expected, rtol=1e-4, atol=1e-5)


def test_l2_norm(run, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    x64 = x.astype(np.float64)
    expected = x64 / np.sqrt((x64**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(run("l2_norm", x=x), expected, rtol=1e-5, atol=1e-6)
    x3 = x[0]
    np.testing.assert_allclose(run("l2_norm", x=x3), x3 / np.sqrt((x3.astype(np.float64) ** 2).sum() + 1e-6), rtol=1e-5)


@pytest.mark.parametrize("size", [3, 4])
def test_local_response_norm(run, rng, size):
    x = rng.standard_normal((2, 6, 3, 3)).astype(F32)
    out = run("local_response_norm", x=x, size=np.int32(size), alpha=np.float32(0.01), beta=np.float32(0.5), k=np.float32(2))
    expected = np.empty(x.shape)
    for c in range(6):
        lo, hi = max(0, c - (size - 1) // 2), min(5, c + size // 2)
        s = np.sum(x[:, lo : hi + 1].astype(np.float64) ** 2, axis=1)
        expected[:, c] = x[:, c] / (2 + 0.01 / size * s) ** 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_large_last_axis_layer_norm_in_row_blocks_matches_float64(run):
    from bench.engines.reference.ops import _util

    before = _util.num_threads()
    _util.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((2, 1024, 320)) * 3 + 1).astype(np.float32)
        gamma = rng.standard_normal(320).astype(np.float32)
        beta = rng.standard_normal(320).astype(np.float32)
        out = run("layer_norm", x=x, axes=np.array([-1], np.int32), gamma=gamma, beta=beta, epsilon=np.float32(1e-5))
        x64 = x.astype(np.float64)
        want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5) * gamma + beta
        assert out.dtype == np.float32 and out.shape == x.shape
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    finally:
        _util.set_num_threads(before)
