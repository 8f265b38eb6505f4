"""Elementwise kernels: arithmetic, comparisons, logic, unary math, activations, cast, select.

Semantics follow coremltools' MIL op definitions (`ops/defs/iOS15/elementwise_binary.py`,
`elementwise_unary.py`, `activation.py` and their iOS17 revisions). Binary ops broadcast numpy
style. Floats stay float32 (the interpreter rounds through fp16 in fp16 mode); integer inputs keep
their integer dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.engines.reference.graph import MIL_DTYPES, Operation
from bench.engines.reference.ops._util import (
    F32,
    as_str,
    chunked,
    f32,
    num_threads,
    parallel_for,
    scaled_size_flops,
    size_flops,
    unsupported,
)
from bench.engines.reference.ops.registry import register

FAMILY = "elementwise"


def _is_int(a: np.ndarray) -> bool:
    return np.asarray(a).dtype.kind in "iu"


def _map(x: np.ndarray, block: Callable[[np.ndarray, np.ndarray], None], chunk_above: int = 1 << 20) -> np.ndarray:
    """Apply `block(out, x)` (a chain of in-place ufuncs) to float32 `x`.

    Arrays above `chunk_above` elements go through `chunked` (cache-sized blocks on the kernel
    threads); below it one pass per ufunc over the whole array measured faster (less per-call
    overhead). Chains with many temporaries (erf, gelu) pass a lower threshold.
    """
    x = np.asarray(x)
    if x.dtype != F32:
        x = x.astype(F32)
    out = np.empty(x.shape, F32)
    if x.size <= chunk_above:
        with np.errstate(all="ignore"):
            block(out.reshape(-1), x.reshape(-1))
        return out
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return chunked(block, out, x)


# A chain of ~20 ufuncs (erf, gelu) keeps its temporaries in L2 only when run block by block:
# measured on (2, 256, 512) float32, chunked 1.3 ms vs 4.2 ms as whole-array passes.
_MANY_TEMPORARIES = 1 << 15


# -- binary arithmetic ------------------------------------------------------------------------------


#: Binary ops with at least this many output values run as one slab per kernel thread (one numpy call
#: each, so the GIL is taken once per slab); smaller ones are a single call.
_SPLIT_BINARY = 1 << 20


def _split_binary(ufunc: np.ufunc, x: Any, y: Any) -> np.ndarray:
    """ufunc(x, y) with numpy broadcasting, float32 where numpy would widen floats; large float
    results are computed in slabs of the broadcast shape's first axis on the kernel threads."""
    x, y = np.asarray(x), np.asarray(y)
    shape = np.broadcast_shapes(x.shape, y.shape)
    dtype = np.result_type(x, y)
    if dtype.kind != "f" or math.prod(shape) < _SPLIT_BINARY or len(shape) == 0 or shape[0] < 2:
        return f32(ufunc(x, y))
    out = np.empty(shape, F32)
    xb, yb = np.broadcast_to(x, shape), np.broadcast_to(y, shape)
    threads = num_threads()
    bounds = [shape[0] * i // threads for i in range(threads + 1)]

    def run(share: list[tuple[int, int]]) -> None:
        for lo, hi in share:
            ufunc(xb[lo:hi], yb[lo:hi], out=out[lo:hi], casting="same_kind")

    parallel_for(run, [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo], out.size)
    return out


def _binary(op_type: str, ufunc: np.ufunc, doc: str) -> None:
    def kernel(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _split_binary(ufunc, x, y)

    kernel.__name__ = op_type
    kernel.__doc__ = doc
    register(op_type, family=FAMILY, flops=size_flops)(kernel)


_binary("add", np.add, "MIL add (iOS15): x + y, numpy broadcasting.")
_binary("sub", np.subtract, "MIL sub (iOS15): x - y, numpy broadcasting.")
_binary("mul", np.multiply, "MIL mul (iOS15): x * y, numpy broadcasting.")
_binary("maximum", np.maximum, "MIL maximum (iOS15): elementwise max(x, y), NaN-propagating.")
_binary("minimum", np.minimum, "MIL minimum (iOS15): elementwise min(x, y), NaN-propagating.")


@register("real_div", family=FAMILY, flops=size_flops)
def real_div(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MIL real_div (iOS15): x / y. For two integer inputs the quotient is truncated toward zero
    and keeps the integer dtype (MIL types the output like its inputs)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_int(x) and _is_int(y):
            dtype = np.result_type(x, y)
            return np.trunc(np.true_divide(x, y)).astype(dtype)
        return _split_binary(np.true_divide, x, y)


@register("floor_div", family=FAMILY, flops=size_flops)
def floor_div(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MIL floor_div (iOS15): floor(x / y), rounding toward negative infinity."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return f32(np.floor_divide(x, y))


@register("mod", family=FAMILY, flops=size_flops)
def mod(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MIL mod (iOS15): x - floor(x / y) * y (the result takes the sign of y, like Python `%`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return f32(np.mod(x, y))


@register("pow", family=FAMILY, flops=size_flops)
def pow_(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MIL pow (iOS15): x ** y (NaN for a negative base with a fractional exponent)."""
    with np.errstate(all="ignore"):
        if _is_int(x) and _is_int(y):
            return np.power(x, np.maximum(y, 0)).astype(np.result_type(x, y))
        return f32(np.power(x, y))


# -- comparisons and logic ----------------------------------------------------------------------------


def _compare(op_type: str, ufunc: np.ufunc, doc: str) -> None:
    def kernel(op: Operation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(ufunc(x, y), dtype=np.bool_)

    kernel.__name__ = op_type
    kernel.__doc__ = doc
    register(op_type, family=FAMILY, flops=size_flops)(kernel)


_compare("equal", np.equal, "MIL equal (iOS15): x == y -> bool, numpy broadcasting.")
_compare("not_equal", np.not_equal, "MIL not_equal (iOS15): x != y -> bool.")
_compare("less", np.less, "MIL less (iOS15): x < y -> bool.")
_compare("less_equal", np.less_equal, "MIL less_equal (iOS15): x <= y -> bool.")
_compare("greater", np.greater, "MIL greater (iOS15): x > y -> bool.")
_compare("greater_equal", np.greater_equal, "MIL greater_equal (iOS15): x >= y -> bool.")
_compare("logical_and", np.logical_and, "MIL logical_and (iOS15): x AND y -> bool (non-zero is true).")
_compare("logical_or", np.logical_or, "MIL logical_or (iOS15): x OR y -> bool (non-zero is true).")
_compare("logical_xor", np.logical_xor, "MIL logical_xor (iOS15): x XOR y -> bool (non-zero is true).")


@register("logical_not", family=FAMILY, flops=size_flops)
def logical_not(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL logical_not (iOS15): NOT x -> bool (non-zero is true)."""
    return np.logical_not(x)


@register("select", family=FAMILY, flops=size_flops)
def select(op: Operation, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MIL select (iOS15): where(cond, a, b) with numpy broadcasting of all three."""
    return f32(np.where(np.asarray(cond).astype(np.bool_, copy=False), a, b))


# -- unary math -------------------------------------------------------------------------------------------


def _unary(op_type: str, ufunc: np.ufunc, doc: str, keep_int: bool = False) -> None:
    def kernel(op: Operation, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            if keep_int and _is_int(x):
                return ufunc(x)
            return f32(ufunc(np.asarray(x, dtype=F32) if _is_int(x) else x))

    kernel.__name__ = op_type
    kernel.__doc__ = doc
    register(op_type, family=FAMILY, flops=size_flops)(kernel)


_unary("abs", np.abs, "MIL abs (iOS15): |x| (integers stay integers).", keep_int=True)
_unary("sign", np.sign, "MIL sign (iOS15): -1, 0 or 1 with the sign of x.", keep_int=True)
_unary("square", np.square, "MIL square (iOS15): x * x.", keep_int=True)
_unary("ceil", np.ceil, "MIL ceil (iOS15): smallest integer >= x.")
_unary("floor", np.floor, "MIL floor (iOS15): largest integer <= x.")
_unary("round", np.rint, "MIL round (iOS15): nearest integer, halves to even (numpy's round, as in "
       "coremltools' value_inference).")
_unary("sqrt", np.sqrt, "MIL sqrt (iOS15): square root (NaN below zero).")
_unary("exp", np.exp, "MIL exp (iOS15): e ** x.")
_unary("exp2", np.exp2, "MIL exp2 (iOS15): 2 ** x.")
_unary("sin", np.sin, "MIL sin (iOS15).")
_unary("cos", np.cos, "MIL cos (iOS15).")
_unary("tan", np.tan, "MIL tan (iOS15).")
_unary("asin", np.arcsin, "MIL asin (iOS15).")
_unary("acos", np.arccos, "MIL acos (iOS15).")
_unary("atan", np.arctan, "MIL atan (iOS15).")
_unary("sinh", np.sinh, "MIL sinh (iOS15).")
_unary("cosh", np.cosh, "MIL cosh (iOS15).")
_unary("atanh", np.arctanh, "MIL atanh (iOS15).")
_unary("tanh", np.tanh, "MIL tanh (iOS15).")


@register("log", family=FAMILY, flops=size_flops)
def log(op: Operation, x: np.ndarray, epsilon: Any = 1e-45) -> np.ndarray:
    """MIL log (iOS15, iOS17): natural log of (x + epsilon); epsilon defaults to 1e-45."""
    with np.errstate(all="ignore"):
        return f32(np.log(np.add(x, F32(epsilon), dtype=F32)))


@register("rsqrt", family=FAMILY, flops=size_flops)
def rsqrt(op: Operation, x: np.ndarray, epsilon: Any = 1e-12) -> np.ndarray:
    """MIL rsqrt (iOS15, iOS17): 1 / sqrt(x + epsilon); epsilon defaults to 1e-12."""
    with np.errstate(all="ignore"):
        y = np.add(x, F32(epsilon), dtype=F32)
        np.sqrt(y, out=y)
        return np.reciprocal(y, out=y)


@register("inverse", family=FAMILY, flops=size_flops)
def inverse(op: Operation, x: np.ndarray, epsilon: Any = 1e-4) -> np.ndarray:
    """MIL inverse (iOS15, iOS17): 1 / (x + epsilon); epsilon defaults to 1e-4."""
    with np.errstate(all="ignore"):
        y = np.add(x, F32(epsilon), dtype=F32)
        return np.reciprocal(y, out=y)


@register("threshold", family=FAMILY, flops=size_flops)
def threshold(op: Operation, x: np.ndarray, alpha: Any) -> np.ndarray:
    """MIL threshold (iOS15): max(x, alpha)."""
    return f32(np.maximum(x, np.asarray(alpha, dtype=np.asarray(x).dtype)))


@register("clip", family=FAMILY, flops=size_flops)
def clip(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL clip (iOS15, iOS17): min(max(x, alpha), beta)."""
    dtype = np.asarray(x).dtype
    return f32(np.minimum(np.maximum(x, np.asarray(alpha, dtype=dtype)), np.asarray(beta, dtype=dtype)))


# erf: numpy has none, and scipy.special.erf's float32 loop measured 4x slower than this on a
# (2, 1280, 1024) tensor (80 ms vs 20 ms), so erf is computed with Abramowitz & Stegun 7.1.26:
# erf(|x|) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2), t = 1 / (1 + p |x|).
# Absolute error <= 1.5e-7 in exact arithmetic, <= 6e-7 measured in float32. (A 6600-entry
# lookup table with linear interpolation was measured only 25% faster for gelu; not worth it.)
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erfc_tail_into(out: np.ndarray, a: np.ndarray, x: np.ndarray, p: float, scale: float, square_factor: float) -> None:
    """out = scale * t (a1 + .. + t a5) * exp(square_factor * x^2), t = 1 / (1 + p a), a = |x|.

    With p = 0.3275911 / sqrt(2) and square_factor = -1/2 this is the tail 0.5 (1 - erf(|x| / sqrt 2))
    gelu needs; with p = 0.3275911 and square_factor = -1 it is 1 - erf(|x|).
    """
    t = np.multiply(a, F32(p))
    t += 1
    np.reciprocal(t, out=t)
    np.multiply(t, F32(scale * _ERF_A[4]), out=out)
    for coefficient in (_ERF_A[3], _ERF_A[2], _ERF_A[1], _ERF_A[0]):
        out += F32(scale * coefficient)
        out *= t
    np.multiply(x, F32(square_factor), out=t)
    t *= x
    np.exp(t, out=t)
    out *= t


def _erf_into(out: np.ndarray, x: np.ndarray) -> None:
    _erfc_tail_into(out, np.abs(x), x, _ERF_P, 1.0, -1.0)
    np.subtract(1, out, out=out)
    np.copysign(out, x, out=out)


@register("erf", family=FAMILY, flops=scaled_size_flops(20))
def erf(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL erf (iOS15): the Gauss error function (float32 rational/exp approximation, |err| < 1e-6)."""
    return _map(x, _erf_into, _MANY_TEMPORARIES)


@register("cast", family=FAMILY, flops=size_flops)
def cast(op: Operation, x: np.ndarray, dtype: Any) -> np.ndarray:
    """MIL cast (iOS15: int32/fp16/fp32/bool; iOS17 adds int8/uint8/int16/uint16).

    Float targets give float32 (the interpreter rounds through fp16 in fp16 mode). Float to integer
    truncates toward zero like coremltools' value_inference (numpy astype); values outside the
    target range saturate and NaN becomes 0, instead of numpy's undefined wrap-around. To bool:
    non-zero is true.
    """
    name = as_str(dtype)
    x = np.asarray(x)
    if name in ("fp16", "fp32", "fp64", "bf16"):
        return x.astype(F32)
    if name == "bool":
        return x.astype(np.bool_)
    if name not in MIL_DTYPES or name == "string":
        raise unsupported(f"cast to dtype {name!r} is not supported")
    target = MIL_DTYPES[name]
    if x.dtype.kind == "f":
        info = np.iinfo(target)
        with np.errstate(invalid="ignore"):
            # float64 so the int32 bounds are exact (float32 rounds 2**31 - 1 up to 2**31).
            y = np.trunc(x.astype(np.float64))
            y = np.nan_to_num(y, nan=0.0, posinf=info.max, neginf=info.min)
            np.clip(y, info.min, info.max, out=y)
        return y.astype(target)
    if x.dtype == np.bool_:
        return x.astype(target)
    info = np.iinfo(target)
    return np.clip(x, max(info.min, np.iinfo(x.dtype).min), min(info.max, np.iinfo(x.dtype).max)).astype(target)


# -- activations ----------------------------------------------------------------------------------------


@register("relu", family=FAMILY, flops=size_flops)
def relu(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL relu (iOS15): max(x, 0)."""
    return _map(x, lambda out, xb: np.maximum(xb, 0, out=out))


@register("relu6", family=FAMILY, flops=size_flops)
def relu6(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL relu6 (iOS15): min(max(x, 0), 6)."""
    return _map(x, lambda out, xb: np.clip(xb, 0, 6, out=out))


def _sigmoid_into(out: np.ndarray, x: np.ndarray) -> None:
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


@register("sigmoid", family=FAMILY, flops=scaled_size_flops(4))
def sigmoid(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL sigmoid (iOS15): 1 / (1 + exp(-x))."""
    return _map(x, _sigmoid_into)


def _silu_into(out: np.ndarray, x: np.ndarray) -> None:
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(x, out, out=out)


@register("silu", family=FAMILY, flops=scaled_size_flops(5))
def silu(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL silu (iOS15): x * sigmoid(x) (a.k.a. swish)."""
    return _map(x, _silu_into)


_SQRT_2_OVER_PI = F32(0.7978845608028654)


def _gelu_exact_into(out: np.ndarray, x: np.ndarray) -> None:
    # 0.5 x (1 + erf(x / sqrt 2)) = max(x, 0) - |x| q with q = 0.5 (1 - erf(|x| / sqrt 2)):
    # x >= 0 gives x - x q, x < 0 gives x q. One erf tail, no sign juggling.
    a = np.abs(x)
    _erfc_tail_into(out, a, x, _ERF_P * 0.7071067811865476, 0.5, -0.5)
    out *= a
    np.maximum(x, 0, out=a)
    np.subtract(a, out, out=out)


def _gelu_tanh_into(out: np.ndarray, x: np.ndarray) -> None:
    np.multiply(x, x, out=out)
    out *= F32(0.044715)
    out += 1
    out *= x
    out *= _SQRT_2_OVER_PI
    np.tanh(out, out=out)
    out += 1
    out *= x
    out *= F32(0.5)


def _gelu_sigmoid_into(out: np.ndarray, x: np.ndarray) -> None:
    np.multiply(x, F32(-1.702), out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(x, out, out=out)


_GELU_MODES = {
    "EXACT": _gelu_exact_into,
    "TANH_APPROXIMATION": _gelu_tanh_into,
    "SIGMOID_APPROXIMATION": _gelu_sigmoid_into,
}


@register("gelu", family=FAMILY, flops=scaled_size_flops(24))
def gelu(op: Operation, x: np.ndarray, mode: Any = "EXACT") -> np.ndarray:
    """MIL gelu (iOS15). EXACT: 0.5 x (1 + erf(x / sqrt 2)); TANH_APPROXIMATION:
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); SIGMOID_APPROXIMATION: x sigmoid(1.702 x)."""
    name = as_str(mode)
    block = _GELU_MODES.get(name)
    if block is None:
        raise unsupported(f"gelu mode {name!r}; expected one of {', '.join(_GELU_MODES)}")
    return _map(x, block, _MANY_TEMPORARIES)


@register("leaky_relu", family=FAMILY, flops=size_flops)
def leaky_relu(op: Operation, x: np.ndarray, alpha: Any) -> np.ndarray:
    """MIL leaky_relu (iOS15, iOS17): x if x >= 0 else alpha * x."""
    a = F32(alpha)

    def block(out: np.ndarray, xb: np.ndarray) -> None:
        np.minimum(xb, 0, out=out)
        out *= a
        out += np.maximum(xb, 0)

    return _map(x, block)


@register("elu", family=FAMILY, flops=scaled_size_flops(3))
def elu(op: Operation, x: np.ndarray, alpha: Any) -> np.ndarray:
    """MIL elu (iOS15, iOS17): x if x > 0 else alpha * (exp(x) - 1)."""
    a = F32(alpha)
    with np.errstate(all="ignore"):
        x = np.asarray(x, dtype=F32)
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))


@register("clamped_relu", family=FAMILY, flops=size_flops)
def clamped_relu(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL clamped_relu (iOS15, iOS17): min(beta, x) if x >= 0 else min(beta, alpha * x)."""
    x = np.asarray(x, dtype=F32)
    return np.minimum(np.where(x >= 0, x, F32(alpha) * x), F32(beta))


@register("linear_activation", family=FAMILY, flops=scaled_size_flops(2))
def linear_activation(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL linear_activation (iOS15, iOS17): alpha * x + beta."""
    y = np.multiply(x, F32(alpha), dtype=F32)
    y += F32(beta)
    return y


def _per_channel(param: Any, rank: int) -> np.ndarray:
    """A [C] parameter shaped to broadcast along axis 1 of a rank-`rank` tensor."""
    p = np.asarray(param, dtype=F32).reshape(-1)
    return p.reshape((1, p.size) + (1,) * (rank - 2)) if rank >= 2 else p


@register("prelu", family=FAMILY, flops=size_flops)
def prelu(op: Operation, x: np.ndarray, alpha: Any) -> np.ndarray:
    """MIL prelu (iOS15, iOS17): x if x > 0 else alpha[c] * x, alpha per channel (axis 1)."""
    x = np.asarray(x, dtype=F32)
    return np.where(x > 0, x, _per_channel(alpha, x.ndim) * x)


@register("scaled_tanh", family=FAMILY, flops=scaled_size_flops(3))
def scaled_tanh(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL scaled_tanh (iOS15, iOS17): alpha * tanh(beta * x)."""
    y = np.multiply(x, F32(beta), dtype=F32)
    np.tanh(y, out=y)
    y *= F32(alpha)
    return y


@register("sigmoid_hard", family=FAMILY, flops=scaled_size_flops(3))
def sigmoid_hard(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL sigmoid_hard (iOS15, iOS17): min(max(alpha * x + beta, 0), 1)."""
    y = np.multiply(x, F32(alpha), dtype=F32)
    y += F32(beta)
    return np.clip(y, 0, 1, out=y)


@register("softplus", family=FAMILY, flops=scaled_size_flops(4))
def softplus(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL softplus (iOS15): log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) to avoid overflow."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@register("softplus_parametric", family=FAMILY, flops=scaled_size_flops(5))
def softplus_parametric(op: Operation, x: np.ndarray, alpha: Any, beta: Any) -> np.ndarray:
    """MIL softplus_parametric (iOS15, iOS17): alpha[c] * log(1 + exp(beta[c] * x)), per channel (axis 1)."""
    x = np.asarray(x, dtype=F32)
    z = _per_channel(beta, x.ndim) * x
    with np.errstate(all="ignore"):
        return _per_channel(alpha, x.ndim) * (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))))


@register("softsign", family=FAMILY, flops=scaled_size_flops(3))
def softsign(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL softsign (iOS15): x / (1 + |x|)."""
    x = np.asarray(x, dtype=F32)
    return x / (1 + np.abs(x))


@register("thresholded_relu", family=FAMILY, flops=size_flops)
def thresholded_relu(op: Operation, x: np.ndarray, alpha: Any) -> np.ndarray:
    """MIL thresholded_relu (iOS15, iOS17): x if x > alpha else 0."""
    x = np.asarray(x, dtype=F32)
    return np.where(x > F32(alpha), x, F32(0))


# -- iOS17 runtime quantization -------------------------------------------------------------------------


def _along(param: Any, rank: int, axis: Any) -> np.ndarray:
    p = np.asarray(param)
    if p.ndim == 0 or axis is None:
        return p
    a = int(np.asarray(axis))
    a = a + rank if a < 0 else a
    return p.reshape([p.size if i == a else 1 for i in range(rank)])


@register("dequantize", family=FAMILY, flops=scaled_size_flops(2))
def dequantize(op: Operation, input: np.ndarray, scale: Any, zero_point: Any = None, axis: Any = None) -> np.ndarray:
    """MIL dequantize (iOS17): (input - zero_point) * scale; scale / zero_point scalars or vectors
    along axis; zero_point defaults to 0."""
    x = np.asarray(input)
    out = x.astype(F32)
    if zero_point is not None:
        out -= _along(np.asarray(zero_point).astype(F32), x.ndim, axis)
    out *= _along(np.asarray(scale, dtype=F32), x.ndim, axis)
    return out


@register("quantize", family=FAMILY, flops=scaled_size_flops(3))
def quantize(
    op: Operation, input: np.ndarray, scale: Any, output_dtype: Any, zero_point: Any = None, axis: Any = None
) -> np.ndarray:
    """MIL quantize (iOS17): clip(round(input / scale) + zero_point) to output_dtype (int8 or uint8);
    rounding halves to even (numpy's around, as coremltools' reference does)."""
    name = as_str(output_dtype)
    if name not in ("int8", "uint8"):
        raise unsupported(f"quantize output_dtype {name!r}; expected int8 or uint8")
    x = np.asarray(input, dtype=F32)
    with np.errstate(all="ignore"):
        q = np.rint(x / _along(np.asarray(scale, dtype=F32), x.ndim, axis))
    if zero_point is not None:
        q += _along(np.asarray(zero_point).astype(F32), x.ndim, axis)
    info = np.iinfo(MIL_DTYPES[name])
    return np.clip(q, info.min, info.max).astype(MIL_DTYPES[name])
