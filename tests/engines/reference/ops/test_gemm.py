"""Split matrix products: every way `gemm.matmul` cuts a product gives numpy's matmul result, and
the cutting really happens on the kernel threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bench.engines.reference.ops import _util, gemm


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}-threads")
def threads(request):
    before = _util.num_threads()
    _util.set_num_threads(request.param)
    yield request.param
    _util.set_num_threads(before)


SHAPES = [
    pytest.param((512, 300), (300, 200), id="rows"),
    pytest.param((40, 300), (300, 150), id="columns"),
    pytest.param((154, 512), (512, 2048), id="few-rows-many-columns-turned-around"),
    pytest.param((6, 130, 70), (6, 70, 90), id="batch"),
    pytest.param((16, 64, 128), (128, 96), id="batch-broadcast-b"),
    pytest.param((1, 200, 128), (4, 128, 96), id="batch-broadcast-a"),
    pytest.param((2, 3, 100, 64), (2, 3, 64, 100), id="two-batch-dims"),
    pytest.param((128,), (128, 300), id="vector-matrix"),
    pytest.param((3, 4), (4, 5), id="tiny-in-the-calling-thread"),
]


@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_split_product_equals_numpy(threads, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal(b_shape, dtype=np.float32)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    got = gemm.matmul(a, b)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_transposed_and_strided_operands_and_given_output(threads):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((640, 320), dtype=np.float32)
    x = rng.standard_normal((2, 600, 320), dtype=np.float32)[:, ::2]  # rows with a stride BLAS cannot read
    out = np.full((2, 300, 640), np.nan, np.float32)
    result = gemm.matmul(x, w.T, out=out)
    assert result is out
    np.testing.assert_allclose(out, np.matmul(x, w.T), rtol=1e-5, atol=1e-4)


def test_big_products_run_on_more_than_one_thread(monkeypatch):
    seen: set[int] = set()
    real = np.matmul

    class Recording:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def matmul(*args, **kwargs):
            seen.add(threading.get_ident())
            return real(*args, **kwargs)

    monkeypatch.setattr(gemm, "np", Recording())
    before = _util.num_threads()
    _util.set_num_threads(2)
    try:
        a = np.ones((512, 256), np.float32)
        gemm.matmul(a, np.ones((256, 512), np.float32))
        assert len(seen) == 2
        seen.clear()
        gemm.matmul(np.ones((8, 8), np.float32), np.ones((8, 8), np.float32))  # too small to hand off
        assert seen == {threading.get_ident()}
    finally:
        _util.set_num_threads(before)


def test_work_started_inside_a_pool_thread_runs_there():
    """A kernel thread that starts split work must not wait on the pool it belongs to."""
    before = _util.num_threads()
    _util.set_num_threads(2)
    try:
        caller = threading.get_ident()
        ran: list[tuple[int, int, list[int]]] = []  # (outer thread, inner thread, inner share)

        def outer(share):
            outer_thread = threading.get_ident()
            _util.parallel_for(lambda inner: ran.append((outer_thread, threading.get_ident(), inner)), [1, 2, 3, 4], 1 << 30)

        _util.parallel_for(outer, [1, 2], 1 << 30)
        from_pool = [(inner, share) for outer_thread, inner, share in ran if outer_thread != caller]
        assert from_pool and all(inner != caller for inner, _ in from_pool)
        assert [share for _, share in from_pool] == [[1, 2, 3, 4]]  # one serial call, in the pool thread
        assert sorted(item for _, _, share in ran for item in share) == [1, 1, 2, 2, 3, 3, 4, 4]
    finally:
        _util.set_num_threads(before)


def test_an_error_in_one_share_waits_for_the_others_and_is_raised():
    before = _util.num_threads()
    _util.set_num_threads(2)
    done = threading.Event()
    try:

        def run(share):
            if share == [0]:
                raise ValueError("boom")
            done.wait(0.2)
            done.set()

        with pytest.raises(ValueError, match="boom"):
            _util.parallel_for(run, [0, 1], 1 << 30)
        assert done.is_set()  # the other share finished before the error left parallel_for
    finally:
        _util.set_num_threads(before)
