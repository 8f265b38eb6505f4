"""Linear-algebra kernels: linear, matmul, einsum.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/linear.py`, `iOS17/linear.py`).
Every product goes through `gemm.matmul` (BLAS, split across the kernel threads).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import F32, as_bool, as_str, f32
from bench.engines.reference.ops.gemm import matmul as product
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "linear"


# -- linear ------------------------------------------------------------------------------------------------


def linear_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """2 * output elements * D_in (+ bias adds)."""
    w = np.asarray(inputs["weight"])
    out = np.asarray(outputs[0])
    return 2.0 * out.size * w.shape[-1] + (out.size if inputs.get("bias") is not None else 0)


@register("linear", family=FAMILY, flops=linear_flops)
def linear(op: Operation, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """MIL linear (iOS15, iOS17): x @ weight^T + bias, x (*, D_in), weight (D_out, D_in), bias (D_out)
    defaulting to zeros; x may be rank 1."""
    x = np.asarray(x, dtype=F32)
    w = np.asarray(weight, dtype=F32)
    if x.shape[-1] != w.shape[-1]:
        raise OpExecutionError(f"linear x {list(x.shape)} last dim != weight {list(w.shape)} D_in")
    lead = x.shape[:-1]
    y = product(x.reshape(-1, x.shape[-1]), w.T)  # BLAS reads the transposed weight in place
    if bias is not None:
        y += np.asarray(bias, F32)
    return y.reshape(lead + (w.shape[0],))


# -- matmul ------------------------------------------------------------------------------------------------


def matmul_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """2 * output elements * contracted length."""
    x = np.asarray(inputs["x"])
    k = x.shape[-2] if as_bool(inputs.get("transpose_x", False)) and x.ndim > 1 else x.shape[-1]
    return 2.0 * np.asarray(outputs[0]).size * k


@register("matmul", family=FAMILY, flops=matmul_flops)
def matmul(op: Operation, x: np.ndarray, y: np.ndarray, transpose_x: Any = False, transpose_y: Any = False) -> np.ndarray:
    """MIL matmul (iOS15, iOS17): numpy matmul of x and y with broadcast batch dims; transpose_x /
    transpose_y (default False) swap the last two dims of that operand first (no effect on rank 1)."""
    a = np.asarray(x)
    b = np.asarray(y)
    if as_bool(transpose_x) and a.ndim > 1:
        a = np.swapaxes(a, -1, -2)
    if as_bool(transpose_y) and b.ndim > 1:
        b = np.swapaxes(b, -1, -2)
    return f32(product(a, b))


# -- einsum ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How a two-operand einsum maps onto one batched matmul."""

    perm_a: tuple[int, ...]  # a -> (batch, free_a, contracted)
    perm_b: tuple[int, ...]  # b -> (batch, contracted, free_b)
    sum_a: tuple[int, ...]  # axes of a summed away first (only in a)
    sum_b: tuple[int, ...]
    batch: str
    free_a: str
    free_b: str
    contracted: str
    out_perm: tuple[int, ...]  # (batch, free_a, free_b) -> output order


@lru_cache(maxsize=256)
def _plan(equation: str) -> _Plan | None:
    """A batched-matmul plan for "ab..,cd..->..", or None where numpy's einsum must do it
    (ellipsis, repeated letters in one operand, more or fewer than two operands, implicit output)."""
    eq = equation.replace(" ", "")
    if "..." in eq or "->" not in eq:
        return None
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None
    a, b = terms
    if len(set(a)) != len(a) or len(set(b)) != len(b) or len(set(out)) != len(out):
        return None
    if any(ch not in a and ch not in b for ch in out):
        return None
    batch = "".join(ch for ch in a if ch in b and ch in out)
    contracted = "".join(ch for ch in a if ch in b and ch not in out)
    free_a = "".join(ch for ch in a if ch not in b and ch in out)
    free_b = "".join(ch for ch in b if ch not in a and ch in out)
    sum_a = tuple(i for i, ch in enumerate(a) if ch not in b and ch not in out)
    sum_b = tuple(i for i, ch in enumerate(b) if ch not in a and ch not in out)
    a_kept = "".join(ch for ch in a if ch in b or ch in out)
    b_kept = "".join(ch for ch in b if ch in a or ch in out)
    perm_a = tuple(a_kept.index(ch) for ch in batch + free_a + contracted)
    perm_b = tuple(b_kept.index(ch) for ch in batch + contracted + free_b)
    result = batch + free_a + free_b
    out_perm = tuple(result.index(ch) for ch in out)
    return _Plan(perm_a, perm_b, sum_a, sum_b, batch, free_a, free_b, contracted, out_perm)


def _einsum_matmul(plan: _Plan, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    if plan.sum_a:
        a = a.sum(axis=plan.sum_a)
    if plan.sum_b:
        b = b.sum(axis=plan.sum_b)
    a = a.transpose(plan.perm_a)
    b = b.transpose(plan.perm_b)
    nb, nfa, nc = len(plan.batch), len(plan.free_a), len(plan.contracted)
    batch_a, batch_b = a.shape[:nb], b.shape[:nb]
    if batch_a != batch_b or a.shape[nb + nfa :] != b.shape[nb : nb + nc]:
        return None  # broadcasting batch dims or mismatched sizes: let numpy's einsum decide
    free_a_shape = a.shape[nb : nb + nfa]
    free_b_shape = b.shape[nb + nc :]
    k = math.prod(a.shape[nb + nfa :])
    a3 = a.reshape(batch_a + (math.prod(free_a_shape), k))
    b3 = b.reshape(batch_b + (k, math.prod(free_b_shape)))
    y = product(a3, b3)
    y = y.reshape(batch_a + free_a_shape + free_b_shape)
    return y.transpose(plan.out_perm)


def einsum_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """2 * output elements * product of the contracted dims."""
    values = inputs["values"]
    eq = as_str(inputs["equation"]).replace(" ", "")
    if "->" not in eq or len(values) != 2:
        return 2.0 * np.asarray(outputs[0]).size
    lhs, out = eq.split("->")
    a_terms, b_terms = lhs.split(",")[:2]
    a = np.asarray(values[0])
    k = math.prod(a.shape[i] for i, ch in enumerate(a_terms) if ch in b_terms and ch not in out and i < a.ndim)
    return 2.0 * np.asarray(outputs[0]).size * k


@register("einsum", family=FAMILY, flops=einsum_flops)
def einsum(op: Operation, values: Sequence[np.ndarray], equation: Any) -> np.ndarray:
    """MIL einsum (iOS15): Einstein summation of two operands (the forms the converters emit, e.g.
    Apple's SPLIT_EINSUM "bchq,bkhc->bkhq" and "bkhq,bchk->bchq", or "bhcq,bhck->bhqk"). Each
    equation is mapped once onto one batched BLAS matmul; anything else falls back to
    numpy.einsum(optimize=True)."""
    eq = as_str(equation)
    arrays = [np.asarray(v) for v in values]
    plan = _plan(eq) if len(arrays) == 2 else None
    if plan is not None:
        result = _einsum_matmul(plan, arrays[0], arrays[1])
        if result is not None:
            return f32(result)
    return f32(np.einsum(eq, *arrays, optimize=True))
