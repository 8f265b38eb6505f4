"""Reduction kernels against numpy formulas written out here (float64 oracles)."""

from __future__ import annotations

import numpy as np
import pytest

F32 = np.float32
I32 = np.int32


def _lse(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


REDUCE = {
    "reduce_sum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "reduce_mean": lambda x, a, k: np.sum(x, axis=a, keepdims=k) / (x.size if a is None else np.prod([x.shape[i] for i in a])),
    "reduce_max": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "reduce_min": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "reduce_prod": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "reduce_l1_norm": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "reduce_l2_norm": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)),
    "reduce_sum_square": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k),
    "reduce_log_sum": lambda x, a, k: np.log(np.sum(np.abs(x), axis=a, keepdims=k)),
    "reduce_log_sum_exp": _lse,
}


@pytest.mark.parametrize("op_type", sorted(REDUCE))
@pytest.mark.parametrize("axes, keep", [(None, False), ([1], False), ([-1, 0], True), ([0, 1, 2], False), ([2], True)])
def test_reductions(run, rng, op_type, axes, keep):
    x = rng.uniform(0.5, 1.5, size=(3, 4, 5)).astype(F32)
    if op_type == "reduce_log_sum":
        x = np.abs(x)
    kwargs = {}
    if axes is not None:
        kwargs["axes"] = np.array(axes, I32)
    if keep:
        kwargs["keep_dims"] = np.bool_(True)
    out = run(op_type, x=x, **kwargs)
    a = None if axes is None else tuple(ax % 3 for ax in axes)
    expected = REDUCE[op_type](x.astype(np.float64), a, keep)
    assert out.dtype == F32
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=2e-6)


def test_reduce_log_sum_exp_is_stable(run):
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf]], F32)
    out = run("reduce_log_sum_exp", x=x, axes=np.array([1], I32))
    np.testing.assert_allclose(out, [1000 + np.log(2), -1000], rtol=1e-6)


def test_reduce_mean_of_large_float32_stays_accurate(run, rng):
    x = (rng.standard_normal((2, 64 * 1024)) + 100).astype(F32)
    out = run("reduce_mean", x=x, axes=np.array([-1], I32), keep_dims=np.bool_(True))
    assert out.dtype == F32 and out.shape == (2, 1)
    np.testing.assert_allclose(out[:, 0], x.astype(np.float64).mean(axis=1), rtol=1e-6)


def test_integer_reductions_keep_integers(run):
    x = np.array([[1, 2], [3, 4]], I32)
    out = run("reduce_sum", x=x, axes=np.array([0], I32))
    assert out.dtype.kind == "i" and out.tolist() == [4, 6]
    assert run("reduce_max", x=x).tolist() == 4


@pytest.mark.parametrize("op_type, fn", [("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)])
def test_arg_reductions(run, rng, op_type, fn):
    x = rng.standard_normal((3, 4, 5)).astype(F32)
    out = run(op_type, x=x)
    assert out.dtype == I32 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, fn(x, axis=-1))
    out = run(op_type, x=x, axis=np.int32(1), keep_dims=np.bool_(True))
    assert out.shape == (3, 1, 5)
    np.testing.assert_array_equal(out[:, 0], fn(x, axis=1))
    ties = np.array([[2, 5, 5, 1]], F32) * (1 if op_type == "reduce_argmax" else -1)
    assert run(op_type, x=ties).tolist() == [1]  # first on ties
    ids = np.array([[49406, 320, 49407, 0, 0]], I32)  # CLIP: argmax of input_ids finds the end token
    assert run("reduce_argmax", x=ids, axis=np.int32(-1)).tolist() == [2]
    assert run(op_type, x=x, output_dtype="int16").dtype == np.int16


def test_cumsum(run):
    x = np.array([[1, 2, 3], [4, 5, 6]], F32)
    np.testing.assert_array_equal(run("cumsum", x=x, axis=np.int32(1)), [[1, 3, 6], [4, 9, 15]])
    np.testing.assert_array_equal(run("cumsum", x=x), [[1, 2, 3], [5, 7, 9]])
    np.testing.assert_array_equal(run("cumsum", x=x, axis=np.int32(-1), exclusive=np.bool_(True)), [[0, 1, 3], [0, 4, 9]])
    np.testing.assert_array_equal(run("cumsum", x=x, axis=np.int32(1), reverse=np.bool_(True)), [[6, 5, 3], [15, 11, 6]])
    np.testing.assert_array_equal(
        run("cumsum", x=x, axis=np.int32(1), reverse=np.bool_(True), exclusive=np.bool_(True)), [[5, 3, 0], [11, 6, 0]]
    )
    assert run("cumsum", x=np.array([1, 1, 1], I32)).dtype == I32


def test_argsort_and_topk(run):
    x = np.array([[3, 1, 3, 2], [0, 5, -1, 5]], F32)
    desc = run("argsort", x=x)
    assert desc.dtype == I32
    np.testing.assert_array_equal(desc, [[0, 2, 3, 1], [1, 3, 0, 2]])
    np.testing.assert_array_equal(run("argsort", x=x, ascending=np.bool_(True)), [[1, 3, 0, 2], [2, 0, 1, 3]])
    values, indices = run("topk", outputs=[("fp32", (2, 2)), ("int32", (2, 2))], x=x, k=np.int32(2))
    np.testing.assert_array_equal(values, [[3, 3], [5, 5]])
    np.testing.assert_array_equal(indices, [[0, 2], [1, 3]])
    values, indices = run("topk", x=x, k=np.int32(1), axis=np.int32(0), ascending=np.bool_(True))
    np.testing.assert_array_equal(values, [[0, 1, -1, 2]])
    np.testing.assert_array_equal(indices, [[1, 0, 1, 0]])
    only_values = run("topk", x=x, k=np.int32(3), return_indices=np.bool_(False), sort=np.bool_(False))
    assert isinstance(only_values, np.ndarray)
    np.testing.assert_array_equal(only_values, [[3, 3, 2], [0, 5, 5]])  # unsorted = index order
