"""Normalization kernels: layer_norm, batch_norm, instance_norm, l2_norm, local_response_norm.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/normalization.py`, iOS17 revision).
Statistics are computed in float32 (numpy's pairwise sums) with the variance taken around the
mean, as the MIL formulas are written. (GroupNorm never reaches these kernels: converters lower it
to reshape / reduce_mean / sub / square / sqrt / real_div.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import CHUNK, F32, as_int, norm_axes, parallel_for
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "normalization"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def norm_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """About 8 operations per element: mean, subtract, square, sum, scale, gamma, beta."""
    return 8.0 * float(np.asarray(outputs[0]).size)


def _normalize(x: np.ndarray, axes: tuple[int, ...], epsilon: Any, out: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) over axes, float32, into `out` or a fresh array."""
    count = math.prod(x.shape[a] for a in axes)
    letters = _LETTERS[: x.ndim]
    kept = "".join(ch for i, ch in enumerate(letters) if i not in axes)
    if axes == (x.ndim - 1,):
        # einsum's row sums measured 2x faster than np.mean / np.add.reduce on (2, 256, 128) rows.
        mean = np.einsum(f"{letters}->{kept}", x)[..., None]
    else:
        mean = np.add.reduce(x, axis=axes, keepdims=True, dtype=F32)
    mean *= F32(1.0 / count)
    out = np.subtract(x, mean, dtype=F32, out=out)
    # Sum of squares without a squared temporary: einsum contracts out with itself.
    var = np.einsum(f"{letters},{letters}->{kept}", out, out).reshape(mean.shape)
    var *= F32(1.0 / count)
    var += F32(epsilon)
    np.sqrt(var, out=var)
    np.reciprocal(var, out=var)
    out *= var
    return out


@register("layer_norm", family=FAMILY, flops=norm_flops)
def layer_norm(
    op: Operation, x: np.ndarray, axes: Any = None, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5
) -> np.ndarray:
    """MIL layer_norm (iOS15, iOS17): gamma * (x - mean) / sqrt(var + epsilon) + beta over axes
    (default: all axes); gamma / beta have shape x.shape[axes] (default ones / zeros); epsilon 1e-5."""
    x = np.asarray(x, dtype=F32)
    ax = tuple(range(x.ndim)) if axes is None else tuple(sorted(norm_axes(axes, x.ndim)))
    if ax == (x.ndim - 1,) and x.ndim > 1 and x.size >= _ROWS_IN_BLOCKS:
        return _layer_norm_rows(x, gamma, beta, epsilon)
    out = _normalize(x, ax, epsilon)
    param_shape = tuple(x.shape[i] if i in ax else 1 for i in range(x.ndim))
    if gamma is not None:
        out *= np.asarray(gamma, F32).reshape(param_shape)
    if beta is not None:
        out += np.asarray(beta, F32).reshape(param_shape)
    return out


#: A last-axis layer_norm over at least this many values runs in blocks of rows on the kernel
#: threads, each block's passes (mean, centre, variance, scale, gamma, beta) done while it is in cache.
_ROWS_IN_BLOCKS = 1 << 18


def _layer_norm_rows(x: np.ndarray, gamma: Any, beta: Any, epsilon: Any) -> np.ndarray:
    width = x.shape[-1]
    rows = np.ascontiguousarray(x).reshape(-1, width)
    out = np.empty(rows.shape, F32)
    g = None if gamma is None else np.asarray(gamma, F32).reshape(width)
    b = None if beta is None else np.asarray(beta, F32).reshape(width)
    step = max(1, CHUNK // width)

    def run(starts: list[int]) -> None:
        for start in starts:
            block = out[start : start + step]
            _normalize(rows[start : start + step], (1,), epsilon, out=block)
            if g is not None:
                block *= g
            if b is not None:
                block += b

    parallel_for(run, list(range(0, rows.shape[0], step)), rows.size)
    return out.reshape(x.shape)


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


@register("batch_norm", family=FAMILY, flops=norm_flops)
def batch_norm(
    op: Operation, x: np.ndarray, mean: Any, variance: Any, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5
) -> np.ndarray:
    """MIL batch_norm (iOS15, iOS17): per channel c (axis 1), gamma[c] * (x - mean[c]) /
    sqrt(variance[c] + epsilon) + beta[c]; gamma / beta default to ones / zeros; x rank 3 to 5."""
    x = np.asarray(x, dtype=F32)
    shape = _channel_shape(x)
    scale = 1 / np.sqrt(np.asarray(variance, F32).reshape(-1) + F32(epsilon))
    if gamma is not None:
        scale = scale * np.asarray(gamma, F32).reshape(-1)
    shift = -np.asarray(mean, F32).reshape(-1) * scale
    if beta is not None:
        shift = shift + np.asarray(beta, F32).reshape(-1)
    out = np.multiply(x, scale.astype(F32).reshape(shape))
    out += shift.astype(F32).reshape(shape)
    return out


@register("instance_norm", family=FAMILY, flops=norm_flops)
def instance_norm(op: Operation, x: np.ndarray, gamma: Any = None, beta: Any = None, epsilon: Any = 1e-5) -> np.ndarray:
    """MIL instance_norm (iOS15, iOS17): normalize each (n, c) over the spatial dims (axes 2..),
    then gamma[c] * . + beta[c] (defaults ones / zeros); epsilon 1e-5; x rank 3 or 4."""
    x = np.asarray(x, dtype=F32)
    if x.ndim < 3:
        raise OpExecutionError(f"instance_norm needs x of rank >= 3, got {list(x.shape)}")
    out = _normalize(x, tuple(range(2, x.ndim)), epsilon)
    shape = _channel_shape(x)
    if gamma is not None:
        out *= np.asarray(gamma, F32).reshape(shape)
    if beta is not None:
        out += np.asarray(beta, F32).reshape(shape)
    return out


@register("l2_norm", family=FAMILY, flops=norm_flops)
def l2_norm(op: Operation, x: np.ndarray, epsilon: Any = 1e-6) -> np.ndarray:
    """MIL l2_norm (iOS15, iOS17): x / sqrt(sum(x^2) + epsilon), the sum taken over the last three
    dims (each leading index normalized separately); epsilon 1e-6."""
    x = np.asarray(x, dtype=F32)
    if x.ndim < 3:
        raise OpExecutionError(f"l2_norm needs x of rank >= 3, got {list(x.shape)}")
    flat = x.reshape(math.prod(x.shape[:-3]), -1)
    total = np.einsum("ij,ij->i", flat, flat)[:, None] + F32(epsilon)
    return (flat / np.sqrt(total)).reshape(x.shape).astype(F32, copy=False)


@register("local_response_norm", family=FAMILY, flops=norm_flops)
def local_response_norm(
    op: Operation, x: np.ndarray, size: Any, alpha: Any = 1e-4, beta: Any = 0.75, k: Any = 1.0
) -> np.ndarray:
    """MIL local_response_norm (iOS15, iOS17): x / (k + alpha / size * sum_j x_j^2) ** beta, the
    sum over the `size` channels around c (floor((size-1)/2) before, ceil((size-1)/2) after,
    as Core ML's LRN layer defines it); defaults alpha 1e-4, beta 0.75, k 1."""
    x = np.asarray(x, dtype=F32)
    n = as_int(size)
    before, after = (n - 1) // 2, n // 2
    sq = np.square(x)
    padded = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    csum = np.cumsum(padded, axis=1, dtype=np.float64)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = (csum[:, n:] - csum[:, :-n]).astype(F32)
    denom = (F32(k) + F32(alpha) / F32(n) * window) ** F32(beta)
    return (x / denom).astype(F32, copy=False)
