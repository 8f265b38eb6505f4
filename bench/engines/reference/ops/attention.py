"""Attention kernels: softmax and scaled_dot_product_attention.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/activation.py` softmax,
`iOS18/transformers.py` scaled_dot_product_attention). Softmax subtracts the max along the axis
before exp, so it neither overflows nor loses the largest terms. Large softmaxes (attention scores
are the biggest tensors in a UNet call) are cut into slabs of rows for the kernel threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import (
    CHUNK,
    F32,
    as_int,
    norm_axis,
    parallel_for,
)
from bench.engines.reference.ops.gemm import blasable
from bench.engines.reference.ops.gemm import matmul as product
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "attention"


def _softmax_into(x: np.ndarray, out: np.ndarray, axis: int) -> None:
    """out = softmax(x) along axis, in four passes (max, subtract + exp in place, sum, divide).
    A row of all -inf gives nan, as the formula (and torch) does."""
    m = np.max(x, axis=axis, keepdims=True)
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True, dtype=F32)


# Below this many elements softmax runs as whole-array passes in the calling thread: measured on
# (2, 2, 256, 256) float32, 0.65 ms that way vs 0.77 ms in row blocks (per-block call overhead);
# above it, slabs of rows go to the kernel threads.
_THREADED_SOFTMAX = 1 << 20


def softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax of `x` along `axis` into a new float32 array."""
    x = np.asarray(x, dtype=F32)
    out = np.empty(x.shape, F32)
    if x.size == 0:
        return out
    split = next((a for a in range(x.ndim) if a != axis and x.shape[a] > 1), None)
    if x.size < _THREADED_SOFTMAX or split is None:
        with np.errstate(all="ignore"):
            _softmax_into(x, out, axis)
        return out
    n = x.shape[split]
    parts = min(n, max(1, x.size // CHUNK))
    bounds = [n * i // parts for i in range(parts + 1)]

    def run(share: list[tuple[int, int]]) -> None:
        for lo, hi in share:
            index = (slice(None),) * split + (slice(lo, hi),)
            _softmax_into(x[index], out[index], axis)

    parallel_for(run, [(bounds[i], bounds[i + 1]) for i in range(parts)], x.size)
    return out


def softmax_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """About 5 operations per element: max, subtract, exp, sum, divide."""
    return 5.0 * float(np.asarray(outputs[0]).size)


@register("softmax", family=FAMILY, flops=softmax_flops)
def softmax(op: Operation, x: np.ndarray, axis: Any = -1) -> np.ndarray:
    """MIL softmax (iOS15): exp(x - max) / sum(exp(x - max)) along axis (default -1)."""
    x = np.asarray(x, dtype=F32)
    if x.ndim == 0:
        return np.ones((), F32)
    return softmax_along(x, norm_axis(as_int(axis), x.ndim))


def sdpa_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """Two matmuls (2 L S E and 2 L S Ev per batch-head) plus the softmax (5 L S)."""
    q = np.asarray(inputs["query"])
    k = np.asarray(inputs["key"])
    v = np.asarray(inputs["value"])
    heads = math.prod(q.shape[:-2])
    length, source = q.shape[-2], k.shape[-2]
    return float(heads * length * source * (2 * q.shape[-1] + 2 * v.shape[-1] + 5))


# Query rows per tile of scaled_dot_product_attention: a (256, S) score tile stays in cache through
# softmax and the second product. Measured single-threaded on (2, 8, 1024, 40): 79 ms tiled vs
# 158 ms with the whole (B, H, L, S) score tensor materialised (torch's flash kernel: 59 ms).
_SDPA_ROWS = 256


@register("scaled_dot_product_attention", family=FAMILY, flops=sdpa_flops)
def scaled_dot_product_attention(
    op: Operation, query: np.ndarray, key: np.ndarray, value: np.ndarray, attn_mask: Any = None
) -> np.ndarray:
    """MIL scaled_dot_product_attention (iOS18): softmax(Q K^T / sqrt(E) + mask) V over the last two
    dims, batch dims broadcast. A bool mask keeps True positions (False -> -inf); a float mask is
    added to the scores. Q (B.., L, E), K (B.., S, E), V (B.., S, Ev) -> (B.., L, Ev). Computed in
    tiles of query rows, so the (L, S) scores are never held whole."""
    q = np.asarray(query, dtype=F32)
    k = np.asarray(key, dtype=F32)
    v = np.asarray(value, dtype=F32)
    if q.ndim < 3 or q.ndim != k.ndim or q.ndim != v.ndim:
        raise OpExecutionError(f"query {list(q.shape)}, key {list(k.shape)}, value {list(v.shape)} need one rank >= 3")
    length, source = q.shape[-2], k.shape[-2]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q = np.broadcast_to(q * F32(1.0 / math.sqrt(q.shape[-1])), lead + q.shape[-2:])
    k = np.broadcast_to(k, lead + k.shape[-2:])
    v = np.broadcast_to(v, lead + v.shape[-2:])
    mask = None
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        if mask.dtype != np.bool_:
            mask = mask.astype(F32, copy=False)
        mask = np.broadcast_to(mask, lead + (length, source))
    out = np.empty(lead + (length, v.shape[-1]), F32)
    with np.errstate(all="ignore"):
        for index in np.ndindex(*lead):
            k_t = blasable(k[index].T)
            v_i = blasable(v[index])
            for row in range(0, length, _SDPA_ROWS):
                rows = slice(row, row + _SDPA_ROWS)
                scores = product(q[index][rows], k_t)
                if mask is not None:
                    tile = mask[index][rows]
                    if tile.dtype == np.bool_:
                        scores[~tile] = -np.inf
                    else:
                        scores += tile
                _softmax_into(scores, scores, scores.ndim - 1)
                product(scores, v_i, out=out[index][rows])
    return out
