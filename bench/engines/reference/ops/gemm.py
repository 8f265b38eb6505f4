"""Matrix products for every kernel: numpy's matmul on single-threaded BLAS, split across the
engine's kernel threads.

Why the engine splits products itself instead of letting OpenBLAS thread them: OpenBLAS's worker
threads spin for a while after every product, on the same cores the kernel threads then need for
the elementwise work between products, and OpenBLAS threads some shapes poorly (a 154-row product,
the cross-attention keys of a UNet, reached about 70 GFLOP/s of the 2-core box's 200). With BLAS at
one thread and each product cut into one block per kernel thread (rows, columns or batch entries),
nothing spins and every product uses every thread. Measured on this 2-core box (issue 13):
2048x640x640 195 GFLOP/s split by rows against 190 with OpenBLAS's two threads; 154x2048x640 156
against 143.

OpenBLAS is slow on products with few rows and many columns: 154x2048x7680 ran at 106 GFLOP/s as
a @ b and at 148 as (b^T @ a^T)^T, the transposing copy included; such products are turned around.

numpy's matmul hands a block to BLAS when each 2-D operand (and the output block) has one unit
stride: row blocks of a C-ordered output and column blocks (ldc = row length) both qualify, so
blocks are written in place. numpy releases the GIL inside BLAS, so the blocks run in parallel.
"""

from __future__ import annotations

import math

import numpy as np

from bench.engines.reference.ops._util import num_threads, parallel_for

#: Products under this many FLOPs run in the calling thread. A hand-off to a pool thread costs
#: 30-50 microseconds (queue, wake-up, the GIL), so splitting only pays once half the product takes
#: longer than that on one core (100 GFLOP/s here): about 8 MFLOP, doubled for the GIL contention
#: of the small kernels around it. Measured on the 64/128 UNet: 182 ms per call at 16 MFLOP, 218 ms
#: at 4 MFLOP (noisy machine; the SDXL-width slice did not move).
SPLIT_MIN_FLOPS = 16_000_000
#: 2-D products with fewer rows than this and at least 4x as many columns are computed transposed.
_SHORT_ROWS = 256
#: Row blocks start at multiples of this (the widest register block of OpenBLAS's SkylakeX / Haswell
#: SGEMM kernels), so no block ends with a ragged panel that another block could have taken.
_ROW_ALIGN = 16


def blasable(a: np.ndarray) -> np.ndarray:
    """`a` itself if its last two dims are a C- or F-ordered matrix (BLAS can read it), else a copy.

    numpy's matmul falls back to a slow non-BLAS loop for any other layout.
    """
    if a.ndim < 2:
        return a
    item = a.itemsize
    s0, s1 = a.strides[-2], a.strides[-1]
    rows, cols = a.shape[-2], a.shape[-1]
    c_order = (s1 == item or cols == 1) and (s0 >= cols * item or rows == 1)
    f_order = (s0 == item or rows == 1) and (s1 >= rows * item or cols == 1)
    if c_order or f_order:
        return a
    return np.ascontiguousarray(a)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """np.matmul(a, b) (batch dims broadcast; rank-1 operands as numpy treats them), split across
    the kernel threads when it is big enough. `out`, when given, must have the result's shape and
    dtype; the result is written there and returned."""
    a = blasable(np.asarray(a))
    b = blasable(np.asarray(b))
    if a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if out is None:
        out = np.empty(batch + (m, n), np.result_type(a, b))
    threads = num_threads()
    flops = 2.0 * math.prod(batch) * m * n * k
    if threads <= 1 or flops < SPLIT_MIN_FLOPS:
        return np.matmul(a, b, out=out)
    if not batch and m < _SHORT_ROWS and n >= 4 * m:
        # few rows, many columns (cross-attention keys: 154 text tokens): OpenBLAS runs
        # b^T @ a^T, then a transposing copy, faster (see module doc)
        out[...] = matmul(b.T, a.T).T
        return out
    if batch and batch[0] >= threads:
        blocks = _bounds(batch[0], threads, 1)

        def run(share: list[tuple[int, int]]) -> None:
            for lo, hi in share:
                np.matmul(_batch_rows(a, len(batch), lo, hi), _batch_rows(b, len(batch), lo, hi), out=out[lo:hi])

    elif m >= n or m >= threads * 4 * _ROW_ALIGN:
        blocks = _bounds(m, threads, _ROW_ALIGN)

        def run(share: list[tuple[int, int]]) -> None:
            for lo, hi in share:
                np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :])

    else:
        blocks = _bounds(n, threads, _ROW_ALIGN)

        def run(share: list[tuple[int, int]]) -> None:
            for lo, hi in share:
                np.matmul(a, b[..., lo:hi], out=out[..., lo:hi])

    parallel_for(run, blocks, int(flops))
    return out


def _bounds(length: int, parts: int, align: int) -> list[tuple[int, int]]:
    """`parts` (or fewer) contiguous (lo, hi) blocks covering range(length), starts aligned."""
    step = -(-length // parts)
    step = -(-step // align) * align
    return [(lo, min(length, lo + step)) for lo in range(0, length, step)]


def _batch_rows(array: np.ndarray, batch_rank: int, lo: int, hi: int) -> np.ndarray:
    """Entries lo:hi of the first batch dim of an operand, or the operand whole where it broadcasts there."""
    if array.ndim - 2 < batch_rank or array.shape[0] == 1:
        return array
    return array[lo:hi]
