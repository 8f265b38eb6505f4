"""softmax and scaled_dot_product_attention against float64 formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest

F32 = np.float32


def ref_softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((2, 5, 7), -1),
        ((2, 5, 7), 1),
        ((2, 77, 1, 64), 1),  # SPLIT_EINSUM: keys in the channel position
        ((2, 3, 300, 300), -1),  # large enough for the threaded block path
        ((2, 600, 1, 300), 1),  # large, strided column strips
        ((4, 3), 0),
        ((7,), 0),
    ],
)
def test_softmax(run, rng, shape, axis):
    x = (rng.standard_normal(shape) * 4).astype(F32)
    out = run("softmax", x=x, axis=np.int32(axis))
    assert out.dtype == F32 and out.shape == x.shape
    np.testing.assert_allclose(out, ref_softmax(x, axis), rtol=1e-5, atol=1e-7)


def test_softmax_default_axis_and_extremes(run):
    x = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 0.0]], F32)
    out = run("softmax", x=x)
    np.testing.assert_allclose(out, [[1, 0, 0], [0, 0.5, 0.5]], atol=1e-7)
    keep = x.copy()
    run("softmax", x=x)
    np.testing.assert_array_equal(x, keep)


def ref_sdpa(q, k, v, mask=None):
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    scores = np.einsum("...le,...se->...ls", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    return np.einsum("...ls,...sv->...lv", ref_softmax(scores, -1), v)


def test_sdpa_plain_and_broadcast_batch(run, rng):
    q = rng.standard_normal((2, 4, 10, 8)).astype(F32)
    k = rng.standard_normal((2, 4, 12, 8)).astype(F32)
    v = rng.standard_normal((2, 4, 12, 6)).astype(F32)
    out = run("scaled_dot_product_attention", query=q, key=k, value=v)
    assert out.dtype == F32 and out.shape == (2, 4, 10, 6)
    np.testing.assert_allclose(out, ref_sdpa(q, k, v), rtol=1e-5, atol=1e-5)
    q3 = rng.standard_normal((3, 5, 8)).astype(F32)
    k3 = rng.standard_normal((3, 7, 8)).astype(F32)
    v3 = rng.standard_normal((3, 7, 8)).astype(F32)
    np.testing.assert_allclose(run("scaled_dot_product_attention", query=q3, key=k3, value=v3), ref_sdpa(q3, k3, v3),
                               rtol=1e-5, atol=1e-5)


def test_sdpa_masks(run, rng):
    q = rng.standard_normal((1, 2, 5, 4)).astype(F32)
    k = rng.standard_normal((1, 2, 5, 4)).astype(F32)
    v = rng.standard_normal((1, 2, 5, 3)).astype(F32)
    causal = np.tril(np.ones((5, 5), np.bool_))
    out = run("scaled_dot_product_attention", query=q, key=k, value=v, attn_mask=causal)
    np.testing.assert_allclose(out, ref_sdpa(q, k, v, causal), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[..., 0, :], v[..., 0, :], rtol=1e-6)  # first query sees only key 0
    additive = rng.standard_normal((1, 1, 5, 5)).astype(F32)
    out = run("scaled_dot_product_attention", query=q, key=k, value=v, attn_mask=additive)
    np.testing.assert_allclose(out, ref_sdpa(q, k, v, additive), rtol=1e-5, atol=1e-5)


def test_sdpa_broadcast_batch_and_long_queries(run, rng):
    # more query rows than one tile, and key / value shared across the batch by broadcasting
    q = rng.standard_normal((2, 3, 600, 8)).astype(F32)
    k = rng.standard_normal((1, 3, 40, 8)).astype(F32)
    v = rng.standard_normal((1, 3, 40, 5)).astype(F32)
    mask = rng.random((600, 40)) > 0.2
    mask[:, 0] = True  # no fully masked row
    out = run("scaled_dot_product_attention", query=q, key=k, value=v, attn_mask=mask)
    kb, vb = np.broadcast_to(k, (2, 3, 40, 8)), np.broadcast_to(v, (2, 3, 40, 5))
    np.testing.assert_allclose(out, ref_sdpa(q, kb, vb, mask), rtol=1e-5, atol=1e-5)
    keep = q.copy()
    run("scaled_dot_product_attention", query=q, key=k, value=v)
    np.testing.assert_array_equal(q, keep)
