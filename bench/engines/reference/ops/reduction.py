"""Reduction kernels: reduce_*, arg-reductions, cumsum, argsort, topk.

Semantics follow coremltools' MIL op definitions (`ops/defs/iOS15/reduction.py`,
`iOS17/reduction.py`, `tensor_operation.py`): `axes` omitted reduces every axis, `keep_dims`
defaults to False, negative axes count from the end. float32 stays float32 (numpy reduces float32
in float32 with pairwise summation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.engines.reference.graph import MIL_DTYPES, Operation
from bench.engines.reference.ops._util import (
    F32,
    as_bool,
    as_int,
    as_str,
    f32,
    norm_axes,
    norm_axis,
    unsupported,
)
from bench.engines.reference.ops.registry import register

FAMILY = "reduction"


def _reduce_flops(op: Operation, inputs: dict[str, Any], outputs: Any) -> float:
    """One operation per input element."""
    return float(np.asarray(inputs["x"]).size)


def _axes(x: np.ndarray, axes: Any) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return norm_axes(axes, x.ndim)


def _reduction(op_type: str, compute: Callable[[np.ndarray, tuple[int, ...] | None, bool], np.ndarray], doc: str) -> None:
    def kernel(op: Operation, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> np.ndarray:
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            return f32(compute(x, _axes(x, axes), as_bool(keep_dims)))

    kernel.__name__ = op_type
    kernel.__doc__ = doc + " axes omitted = all axes; keep_dims defaults to False."
    register(op_type, family=FAMILY, flops=_reduce_flops)(kernel)


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...] | None, keep: bool) -> np.ndarray:
    x = x.astype(F32, copy=False)
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, F32(0))
    s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return s if keep else np.squeeze(s, axis=axes)


_reduction("reduce_sum", lambda x, a, k: np.sum(x, axis=a, keepdims=k), "MIL reduce_sum (iOS15): sum over axes.")
_reduction("reduce_mean", lambda x, a, k: np.mean(x, axis=a, keepdims=k, dtype=F32 if x.dtype.kind == "f" else None),
           "MIL reduce_mean (iOS15): mean over axes.")
_reduction("reduce_max", lambda x, a, k: np.max(x, axis=a, keepdims=k), "MIL reduce_max (iOS15): max over axes.")
_reduction("reduce_min", lambda x, a, k: np.min(x, axis=a, keepdims=k), "MIL reduce_min (iOS15): min over axes.")
_reduction("reduce_prod", lambda x, a, k: np.prod(x, axis=a, keepdims=k), "MIL reduce_prod (iOS15): product over axes.")
_reduction("reduce_l1_norm", lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
           "MIL reduce_l1_norm (iOS15): sum of |x| over axes.")
_reduction("reduce_l2_norm", lambda x, a, k: np.sqrt(np.sum(np.square(x.astype(F32, copy=False)), axis=a, keepdims=k)),
           "MIL reduce_l2_norm (iOS15): sqrt(sum(x^2)) over axes.")
_reduction("reduce_sum_square", lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
           "MIL reduce_sum_square (iOS15): sum(x^2) over axes.")
_reduction("reduce_log_sum", lambda x, a, k: np.log(np.sum(x.astype(F32, copy=False), axis=a, keepdims=k)),
           "MIL reduce_log_sum (iOS15): log(sum(x)) over axes.")
_reduction("reduce_log_sum_exp", _log_sum_exp,
           "MIL reduce_log_sum_exp (iOS15): log(sum(exp(x))) over axes, computed with the max subtracted.")


def _arg(op_type: str, fn: Callable[..., np.ndarray], doc: str) -> None:
    def kernel(op: Operation, x: np.ndarray, axis: Any = -1, keep_dims: Any = False, output_dtype: Any = "int32") -> np.ndarray:
        x = np.asarray(x)
        a = norm_axis(as_int(axis), x.ndim)
        dtype = MIL_DTYPES.get(as_str(output_dtype))
        if dtype is None or dtype.kind not in "iu":
            raise unsupported(f"{op_type} output_dtype {as_str(output_dtype)!r}")
        return fn(x, axis=a, keepdims=as_bool(keep_dims)).astype(dtype)

    kernel.__name__ = op_type
    kernel.__doc__ = doc
    register(op_type, family=FAMILY, flops=_reduce_flops)(kernel)


_arg("reduce_argmax", np.argmax, "MIL reduce_argmax (iOS15; iOS17 output_dtype): index of the largest value "
     "along axis (default -1; first one on ties); keep_dims defaults to False; int32 unless output_dtype says.")
_arg("reduce_argmin", np.argmin, "MIL reduce_argmin (iOS15; iOS17 output_dtype): index of the smallest value "
     "along axis (default -1; first one on ties); keep_dims defaults to False; int32 unless output_dtype says.")


@register("cumsum", family=FAMILY, flops=_reduce_flops)
def cumsum(op: Operation, x: np.ndarray, axis: Any = 0, exclusive: Any = False, reverse: Any = False) -> np.ndarray:
    """MIL cumsum (iOS15): running sum along axis (default 0). exclusive shifts by one (first element 0);
    reverse sums from the end."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    y = np.flip(x, axis=a) if as_bool(reverse) else x
    out = np.cumsum(y, axis=a, dtype=y.dtype)
    if as_bool(exclusive):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=a)), np.take(out, np.arange(out.shape[a] - 1), axis=a)], axis=a)
    if as_bool(reverse):
        out = np.flip(out, axis=a)
    return f32(out)


def _sort_order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    """Stable sort order along axis; descending keeps equal values in index order too."""
    if ascending:
        return np.argsort(x, axis=axis, kind="stable")
    flipped = np.flip(x, axis=axis)
    order = np.flip(np.argsort(flipped, axis=axis, kind="stable"), axis=axis)
    return x.shape[axis] - 1 - order


@register("argsort", family=FAMILY, flops=_reduce_flops)
def argsort(op: Operation, x: np.ndarray, axis: Any = -1, ascending: Any = False) -> np.ndarray:
    """MIL argsort (iOS15): int32 indices that sort x along axis (default -1), descending unless
    ascending; equal values keep their index order."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    return _sort_order(x, a, as_bool(ascending)).astype(np.int32)


@register("topk", family=FAMILY, flops=_reduce_flops)
def topk(
    op: Operation,
    x: np.ndarray,
    k: Any = 1,
    axis: Any = -1,
    ascending: Any = False,
    sort: Any = True,
    return_indices: Any = True,
    output_indices_dtype: Any = "int32",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """MIL topk (iOS15; iOS16 sort / return_indices; iOS17 output_indices_dtype): the k largest values
    along axis (smallest if ascending) and their indices; sort=False keeps them in index order
    (allowed by MIL, which leaves the order unspecified)."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    n = as_int(k)
    n = x.shape[a] if n < 0 else n
    order = np.take(_sort_order(x, a, as_bool(ascending)), np.arange(n), axis=a)
    if not as_bool(sort):
        order = np.sort(order, axis=a)
    values = f32(np.take_along_axis(x, order, axis=a))
    if not as_bool(return_indices):
        return values
    dtype = MIL_DTYPES.get(as_str(output_indices_dtype), np.dtype(np.int32))
    return values, order.astype(dtype)
