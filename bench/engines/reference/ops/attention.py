"""Attention kernels: softmax and scaled_dot_product_attention.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/activation.py` softmax,
`iOS18/transformers.py` scaled_dot_product_attention). Softmax subtracts the max along the axis
before exp, so it neither overflows nor loses the largest terms. Large softmaxes (attention scores
are the biggest tensors in a UNet call) run block by block on the kernel thread pool: each block is
a few rows, small enough to stay in cache through max / exp / sum / divide.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import CHUNK, F32, as_int, norm_axis, parallel_for
from bench.engines.reference.ops.linear import blasable
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "attention"


def _softmax_block(x: np.ndarray, out: np.ndarray) -> None:
    """softmax over axis 1 of a (pre, K, post) block, written to out (same shape). A row of all
    -inf gives nan, as the formula (and torch) does."""
    m = np.max(x, axis=1, keepdims=True)
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    s = np.sum(out, axis=1, keepdims=True, dtype=F32)
    out /= s


def softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax of float32 `x` along `axis` into a new contiguous array, in cache-sized blocks."""
    x = np.ascontiguousarray(x, dtype=F32)
    out = np.empty_like(x)
    pre = math.prod(x.shape[:axis])
    k = x.shape[axis]
    post = math.prod(x.shape[axis + 1 :])
    x3 = x.reshape(pre, k, post)
    o3 = out.reshape(pre, k, post)
    if x.size == 0:
        return out
    # Blocks of whole rows when a row (K * post values) is small, else column strips of one row.
    if post == 1 or k * post <= CHUNK:
        rows = max(1, CHUNK // (k * post))
        tasks = [(slice(i, i + rows), slice(None)) for i in range(0, pre, rows)]
    else:
        cols = max(1, CHUNK // k)
        tasks = [(slice(i, i + 1), slice(j, j + cols)) for i in range(pre) for j in range(0, post, cols)]

    def run(batch: list[tuple[slice, slice]]) -> None:
        for r, c in batch:
            _softmax_block(x3[r, :, c], o3[r, :, c])

    parallel_for(run, tasks, x.size)
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


@register("scaled_dot_product_attention", family=FAMILY, flops=sdpa_flops)
def scaled_dot_product_attention(
    op: Operation, query: np.ndarray, key: np.ndarray, value: np.ndarray, attn_mask: Any = None
) -> np.ndarray:
    """MIL scaled_dot_product_attention (iOS18): softmax(Q K^T / sqrt(E) + mask) V over the last two
    dims, batch dims broadcast. A bool mask keeps True positions (False -> -inf); a float mask is
    added to the scores. Q (B.., L, E), K (B.., S, E), V (B.., S, Ev) -> (B.., L, Ev)."""
    q = np.asarray(query, dtype=F32)
    k = np.asarray(key, dtype=F32)
    v = np.asarray(value, dtype=F32)
    if q.ndim < 3 or q.ndim != k.ndim or q.ndim != v.ndim:
        raise OpExecutionError(f"query {list(q.shape)}, key {list(k.shape)}, value {list(v.shape)} need one rank >= 3")
    scale = F32(1.0 / math.sqrt(q.shape[-1]))
    scores = np.matmul(blasable(q * scale), blasable(np.swapaxes(k, -1, -2)))
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        if mask.dtype == np.bool_:
            scores = np.where(mask, scores, F32(-np.inf))
        else:
            scores = np.add(scores, mask.astype(F32, copy=False), dtype=F32)
    weights = softmax_along(scores, scores.ndim - 1)
    return np.matmul(weights, blasable(v))
