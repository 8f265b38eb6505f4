"""linear, matmul and einsum kernels against explicit float64 sums (np.einsum as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.engines.reference.ops import get_kernel
from bench.engines.reference.ops.gemm import blasable

F32 = np.float32


@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 77, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear(run, rng, x_shape, with_bias):
    x = rng.standard_normal(x_shape).astype(F32)
    w = rng.standard_normal((4, 5)).astype(F32)
    b = rng.standard_normal(4).astype(F32)
    out = run("linear", x=x, weight=w, **({"bias": b} if with_bias else {}))
    expected = np.einsum("...i,oi->...o", x.astype(np.float64), w.astype(np.float64)) + (b if with_bias else 0)
    assert out.dtype == F32 and out.shape == x_shape[:-1] + (4,)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_linear_on_transposed_input(run, rng):
    # stock diffusers UNets feed linear with transposed (B, HW, C) views of (B, C, HW) tensors
    x = rng.standard_normal((2, 6, 10)).astype(F32).transpose(0, 2, 1)
    w = rng.standard_normal((3, 6)).astype(F32)
    np.testing.assert_allclose(run("linear", x=x, weight=w), np.einsum("bsi,oi->bso", x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x_shape, y_shape, tx, ty",
    [
        ((3, 4), (4, 5), False, False),
        ((4, 3), (4, 5), True, False),
        ((3, 4), (5, 4), False, True),
        ((2, 8, 4, 3), (2, 8, 5, 4), True, True),
        ((2, 1, 3, 4), (8, 4, 6), False, False),  # broadcast batch dims
        ((4,), (4, 5), False, False),  # rank-1 operands follow numpy
        ((3, 4), (4,), False, False),
        ((4,), (5, 4), True, True),  # transposes do not apply to rank 1
    ],
)
def test_matmul(run, rng, x_shape, y_shape, tx, ty):
    x = rng.standard_normal(x_shape).astype(F32)
    y = rng.standard_normal(y_shape).astype(F32)
    out = run("matmul", x=x, y=y, transpose_x=np.bool_(tx), transpose_y=np.bool_(ty))
    a = x.astype(np.float64)
    b = y.astype(np.float64)
    if tx and a.ndim > 1:
        a = np.swapaxes(a, -1, -2)
    if ty and b.ndim > 1:
        b = np.swapaxes(b, -1, -2)
    expected = np.matmul(a, b)
    assert out.dtype == F32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_matmul_on_non_blas_strides(run, rng):
    base = rng.standard_normal((4, 6, 8)).astype(F32)
    x = base[:, ::2, ::2]  # neither C nor F ordered in the last two dims
    y = rng.standard_normal((4, 4, 3)).astype(F32)
    np.testing.assert_allclose(run("matmul", x=x, y=y), np.einsum("bij,bjk->bik", x, y), rtol=1e-5, atol=1e-5)
    assert blasable(x) is not x and blasable(x).flags.c_contiguous
    transposed = base.transpose(0, 2, 1)  # F-ordered matrices: BLAS reads them as they are
    assert blasable(transposed) is transposed


EQUATIONS = [
    # Apple SPLIT_EINSUM attention: scores and weighted values per head
    ("bchq,bkhc->bkhq", (2, 8, 1, 16), (2, 12, 1, 8)),
    ("bkhq,bchk->bchq", (2, 12, 1, 16), (2, 8, 1, 12)),
    # ORIGINAL-style and other converter forms
    ("bhcq,bhck->bhqk", (2, 3, 8, 10), (2, 3, 8, 12)),
    ("bhqk,bhck->bhcq", (2, 3, 10, 12), (2, 3, 8, 12)),
    ("bij,bjk->bik", (3, 4, 5), (3, 5, 6)),
    ("ij,jk->ik", (4, 5), (5, 6)),
    ("i,j->ij", (4,), (5,)),
    ("bi,bi->b", (3, 7), (3, 7)),
    ("abc,cd->abd", (2, 3, 4), (4, 5)),
    ("nhwc,nhcd->nwd", (2, 3, 4, 5), (2, 3, 5, 6)),  # h contracted together with c
    ("bxi,yj->bij", (2, 3, 4), (5, 6)),  # letters summed inside one operand
    ("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)),  # ellipsis: numpy fallback
    ("ii->i", (4, 4), None),  # one operand, diagonal: numpy fallback
]


@pytest.mark.parametrize("equation, a_shape, b_shape", EQUATIONS, ids=[e[0] for e in EQUATIONS])
def test_einsum(run, rng, equation, a_shape, b_shape):
    arrays = [rng.standard_normal(a_shape).astype(F32)]
    if b_shape is not None:
        arrays.append(rng.standard_normal(b_shape).astype(F32))
    out = run("einsum", values=arrays, equation=equation)
    expected = np.einsum(equation, *[a.astype(np.float64) for a in arrays])
    assert out.dtype == F32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_einsum_flops_counts_the_contracted_dim():
    a = np.zeros((2, 8, 1, 16), F32)
    b = np.zeros((2, 12, 1, 8), F32)
    out = np.zeros((2, 12, 1, 16), F32)
    flops = get_kernel("einsum").flops(None, {"values": [a, b], "equation": "bchq,bkhc->bkhq"}, (out,))
    assert flops == 2 * out.size * 8
    assert get_kernel("matmul").flops(None, {"x": np.zeros((3, 4), F32), "y": None}, (np.zeros((3, 5), F32),)) == 2 * 15 * 4
    assert get_kernel("linear").flops(None, {"x": None, "weight": np.zeros((5, 4), F32)}, (np.zeros((3, 5), F32),)) == 2 * 15 * 4
