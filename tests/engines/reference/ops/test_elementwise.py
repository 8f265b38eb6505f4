"""Elementwise kernels against numpy / math formulas written here, independently of the kernels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bench.engines.reference.ops import get_kernel
from bench.errors import UnsupportedOpError

F32 = np.float32

BINARY = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "real_div": lambda x, y: x / y,
    "maximum": np.fmax,
    "minimum": np.fmin,
    "pow": lambda x, y: np.abs(x) ** y,
}


@pytest.mark.parametrize("op_type", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((5,), ()), ((), (1, 4))])
def test_binary_float_broadcasts_and_stays_float32(run, rng, op_type, shapes):
    x = rng.standard_normal(shapes[0]).astype(F32)
    y = (rng.standard_normal(shapes[1]) + 3).astype(F32)
    if op_type == "pow":
        x = np.abs(x)
    out = run(op_type, x=x, y=y)
    expected = BINARY[op_type](x.astype(np.float64), y.astype(np.float64))
    assert out.dtype == F32
    assert out.shape == np.broadcast_shapes(shapes[0], shapes[1])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_binary_with_python_and_0d_scalars_stays_float32(run):
    x = np.arange(4, dtype=F32)
    assert run("add", x=x, y=np.array(0.5, dtype=F32)).dtype == F32
    assert run("mul", x=x, y=0.5).dtype == F32
    assert run("real_div", x=x, y=np.float32(3)).dtype == F32


def test_integer_arithmetic_keeps_int32(run):
    x = np.array([7, -7, 9, 0], dtype=np.int32)
    y = np.array([2, 2, -4, 5], dtype=np.int32)
    assert run("add", x=x, y=y).dtype == np.int32
    np.testing.assert_array_equal(run("mul", x=x, y=y), [14, -14, -36, 0])
    div = run("real_div", x=x, y=y)
    assert div.dtype == np.int32
    np.testing.assert_array_equal(div, [3, -3, -2, 0])  # truncation toward zero
    np.testing.assert_array_equal(run("pow", x=x, y=np.array(2, np.int32)), [49, 49, 81, 0])


def test_floor_div_and_mod_follow_floor_semantics(run):
    x = np.array([7.0, -7.0, 7.0, -7.5], dtype=F32)
    y = np.array([2.0, 2.0, -2.0, 2.0], dtype=F32)
    np.testing.assert_array_equal(run("floor_div", x=x, y=y), [3.0, -4.0, -4.0, -4.0])
    np.testing.assert_array_equal(run("mod", x=x, y=y), [1.0, 1.0, -1.0, 0.5])
    xi, yi = np.array([7, -7], np.int32), np.array([2, 2], np.int32)
    np.testing.assert_array_equal(run("floor_div", x=xi, y=yi), [3, -4])
    np.testing.assert_array_equal(run("mod", x=xi, y=yi), [1, 1])


COMPARE = {
    "equal": lambda x, y: x == y,
    "not_equal": lambda x, y: x != y,
    "less": lambda x, y: x < y,
    "less_equal": lambda x, y: x <= y,
    "greater": lambda x, y: x > y,
    "greater_equal": lambda x, y: x >= y,
}


@pytest.mark.parametrize("op_type", sorted(COMPARE))
def test_comparisons_give_bool(run, op_type):
    x = np.array([[1, 2, 3], [3, 2, 1]], dtype=F32)
    y = np.array([2, 2, 2], dtype=F32)
    out = run(op_type, x=x, y=y)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, COMPARE[op_type](x, y))
    xi = x.astype(np.int16)
    np.testing.assert_array_equal(run(op_type, x=xi, y=np.int16(2)), COMPARE[op_type](x, 2))


def test_logical_ops(run):
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    np.testing.assert_array_equal(run("logical_and", x=a, y=b), [True, False, False, False])
    np.testing.assert_array_equal(run("logical_or", x=a, y=b), [True, True, True, False])
    np.testing.assert_array_equal(run("logical_xor", x=a, y=b), [False, True, True, False])
    np.testing.assert_array_equal(run("logical_not", x=a), [False, False, True, True])


def test_select_broadcasts_condition(run, rng):
    cond = np.array([[True], [False]])
    a = rng.standard_normal((2, 3)).astype(F32)
    b = np.array(-1.0, dtype=F32)
    out = run("select", cond=cond, a=a, b=b)
    assert out.dtype == F32
    np.testing.assert_array_equal(out[0], a[0])
    np.testing.assert_array_equal(out[1], [-1, -1, -1])


UNARY = {
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "exp2": lambda v: 2.0**v,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "atanh": math.atanh,
    "tanh": math.tanh,
    "square": lambda v: v * v,
    "sign": lambda v: (v > 0) - (v < 0),
    "erf": math.erf,
}


@pytest.mark.parametrize("op_type", sorted(UNARY))
def test_unary_math_against_python_math(run, rng, op_type):
    x = rng.uniform(-0.95, 0.95, size=(3, 7)).astype(F32)
    if op_type == "sqrt":
        x = np.abs(x)
    out = run(op_type, x=x)
    expected = np.vectorize(UNARY[op_type], otypes=[np.float64])(x.astype(np.float64))
    assert out.dtype == F32
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-6)


def test_round_halves_to_even(run):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.2, -1.7], dtype=F32)
    np.testing.assert_array_equal(run("round", x=x), [0, 2, 2, -0, -2, 1, -2])


def test_erf_over_wide_range_and_special_values(run):
    x = np.concatenate([np.linspace(-6, 6, 2001), [0.0, -0.0, 1e-6, np.inf, -np.inf]]).astype(F32)
    out = run("erf", x=x)
    expected = np.array([math.erf(float(v)) for v in x])
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)
    assert np.isnan(run("erf", x=np.array([np.nan], F32)))[0]


def test_epsilon_defaults_of_log_rsqrt_inverse(run):
    zero = np.zeros(2, F32)
    np.testing.assert_allclose(run("log", x=zero), np.log(np.float32(1e-45)), rtol=1e-6)
    np.testing.assert_allclose(run("rsqrt", x=zero), 1e6, rtol=1e-5)
    np.testing.assert_allclose(run("inverse", x=zero), 1e4, rtol=1e-5)
    x = np.array([1.0, 4.0], F32)
    np.testing.assert_allclose(run("rsqrt", x=x, epsilon=np.float32(0)), [1.0, 0.5])
    np.testing.assert_allclose(run("inverse", x=x, epsilon=np.float32(1)), [0.5, 0.2])
    np.testing.assert_allclose(run("log", x=x, epsilon=np.float32(0)), np.log([1.0, 4.0]), rtol=1e-6)
    for op_type in ("log", "rsqrt", "inverse"):
        assert run(op_type, x=x).dtype == F32


def test_clip_and_threshold(run):
    x = np.array([-3, -1, 0, 2, 5], dtype=F32)
    np.testing.assert_array_equal(run("clip", x=x, alpha=np.float32(-1), beta=np.float32(2)), [-1, -1, 0, 2, 2])
    np.testing.assert_array_equal(run("threshold", x=x, alpha=np.float32(0.5)), [0.5, 0.5, 0.5, 2, 5])


def _gelu_exact(v: float) -> float:
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def _gelu_tanh(v: float) -> float:
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))


def _gelu_sigmoid(v: float) -> float:
    return v / (1 + math.exp(-1.702 * v))


@pytest.mark.parametrize(
    "mode, formula",
    [(None, _gelu_exact), ("EXACT", _gelu_exact), ("TANH_APPROXIMATION", _gelu_tanh), ("SIGMOID_APPROXIMATION", _gelu_sigmoid)],
)
def test_gelu_modes(run, rng, mode, formula):
    x = (rng.standard_normal((4, 33)) * 4).astype(F32)
    kwargs = {} if mode is None else {"mode": mode}
    out = run("gelu", x=x, **kwargs)
    expected = np.vectorize(formula)(x.astype(np.float64))
    assert out.dtype == F32 and out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=3e-6)


def test_gelu_rejects_unknown_mode(run):
    with pytest.raises(UnsupportedOpError, match="gelu mode"):
        run("gelu", x=np.zeros(3, F32), mode="FAST")


ACTIVATIONS = [
    ("relu", {}, lambda v: max(v, 0.0)),
    ("relu6", {}, lambda v: min(max(v, 0.0), 6.0)),
    ("sigmoid", {}, lambda v: 1 / (1 + math.exp(-v))),
    ("silu", {}, lambda v: v / (1 + math.exp(-v))),
    ("softplus", {}, lambda v: math.log1p(math.exp(v)) if v < 30 else v),
    ("softsign", {}, lambda v: v / (1 + abs(v))),
    ("leaky_relu", {"alpha": F32(0.1)}, lambda v: v if v >= 0 else 0.1 * v),
    ("elu", {"alpha": F32(0.7)}, lambda v: v if v > 0 else 0.7 * (math.exp(v) - 1)),
    ("clamped_relu", {"alpha": F32(0.2), "beta": F32(3.0)}, lambda v: min(3.0, v if v >= 0 else 0.2 * v)),
    ("linear_activation", {"alpha": F32(2.0), "beta": F32(-1.0)}, lambda v: 2 * v - 1),
    ("scaled_tanh", {"alpha": F32(1.5), "beta": F32(0.5)}, lambda v: 1.5 * math.tanh(0.5 * v)),
    ("sigmoid_hard", {"alpha": F32(0.2), "beta": F32(0.5)}, lambda v: min(max(0.2 * v + 0.5, 0.0), 1.0)),
    ("thresholded_relu", {"alpha": F32(1.0)}, lambda v: v if v > 1.0 else 0.0),
]


@pytest.mark.parametrize("op_type, params, formula", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activations(run, rng, op_type, params, formula):
    x = np.concatenate([(rng.standard_normal(50) * 5), [-100.0, -20.0, 0.0, 20.0, 100.0]]).astype(F32).reshape(5, 11)
    with warnings.catch_warnings(), np.errstate(all="warn"):  # no overflow / underflow warning leaks out
        warnings.simplefilter("error")
        out = run(op_type, x=x, **params)
    expected = np.vectorize(formula, otypes=[np.float64])(x.astype(np.float64))
    assert out.dtype == F32 and out.shape == x.shape
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-6)


def test_per_channel_activations(run, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    alpha = np.array([0.1, 0.2, 0.3], F32)
    beta = np.array([1.0, 2.0, 0.5], F32)
    a4 = alpha.reshape(1, 3, 1, 1).astype(np.float64)
    b4 = beta.reshape(1, 3, 1, 1).astype(np.float64)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(run("prelu", x=x, alpha=alpha), np.where(x64 > 0, x64, a4 * x64), rtol=1e-6)
    np.testing.assert_allclose(
        run("softplus_parametric", x=x, alpha=alpha, beta=beta), a4 * np.log1p(np.exp(b4 * x64)), rtol=1e-5, atol=1e-6
    )


def test_chunked_path_on_large_and_strided_inputs(run, rng):
    big = rng.standard_normal((3, 300, 400)).astype(F32)  # above the threaded-chunk threshold
    expected = big.astype(np.float64) / (1 + np.exp(-big.astype(np.float64)))
    np.testing.assert_allclose(run("silu", x=big), expected, rtol=2e-6, atol=1e-6)
    strided = big.transpose(2, 0, 1)[:, :, ::3]
    out = run("sigmoid", x=strided)
    assert out.shape == strided.shape
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-strided.astype(np.float64))), rtol=2e-6, atol=1e-7)
    scalar = run("silu", x=np.array(2.0, F32))
    assert scalar.shape == () and np.isclose(scalar, 2 / (1 + math.exp(-2)))


def test_kernels_do_not_modify_inputs(run, rng):
    x = rng.standard_normal((4, 5)).astype(F32)
    keep = x.copy()
    for op_type in ("silu", "sigmoid", "gelu", "erf", "relu", "rsqrt", "inverse", "log"):
        run(op_type, x=x)
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize(
    "dtype, values, expected, np_type",
    [
        ("int32", [-1.7, -0.2, 0.9, 2.5, 3e10, -3e10, np.nan], [-1, 0, 0, 2, 2**31 - 1, -(2**31), 0], np.int32),
        ("int16", [-1.7, 40000.0, -40000.0, 7.9], [-1, 32767, -32768, 7], np.int16),
        ("uint16", [-3.0, 70000.0, 7.9], [0, 65535, 7], np.uint16),
        ("int8", [-1.5, 200.0], [-1, 127], np.int8),
        ("uint8", [3.7, 300.0], [3, 255], np.uint8),
        ("bool", [0.0, -0.0, 0.1, -2.0], [False, False, True, True], np.bool_),
    ],
)
def test_cast_from_float(run, dtype, values, expected, np_type):
    out = run("cast", x=np.array(values, F32), dtype=dtype)
    assert out.dtype == np_type
    np.testing.assert_array_equal(out, np.array(expected, dtype=np_type))


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "fp64", "bf16"])
def test_cast_to_float_gives_float32(run, dtype):
    out = run("cast", x=np.array([1, -2, 3], np.int32), dtype=dtype)
    assert out.dtype == F32
    np.testing.assert_array_equal(out, [1, -2, 3])
    assert run("cast", x=np.array([True, False]), dtype=dtype).tolist() == [1.0, 0.0]


def test_cast_between_integers_saturates(run):
    out = run("cast", x=np.array([-5, 70000, 12], np.int32), dtype="uint16")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [0, 65535, 12])
    back = run("cast", x=np.array([65535, 3], np.uint16), dtype="int32")
    np.testing.assert_array_equal(back, [65535, 3])


def test_cast_rejects_unknown_dtype(run):
    with pytest.raises(UnsupportedOpError, match="cast"):
        run("cast", x=np.zeros(2, F32), dtype="complex64")


def test_elementwise_kernels_have_docstrings_and_flops():
    for op_type in ("add", "silu", "gelu", "cast", "erf", "equal"):
        kernel = get_kernel(op_type)
        assert kernel.family == "elementwise"
        assert kernel.doc.startswith("MIL ")
        assert kernel.flops is not None
    x = np.zeros((2, 3), F32)
    out = get_kernel("gelu").fn(None, x=x)
    assert get_kernel("add").flops(None, {"x": x, "y": x}, (out,)) == 6


@pytest.mark.parametrize("op_type, ufunc", [("add", np.add), ("mul", np.multiply), ("sub", np.subtract), ("real_div", np.true_divide)])
@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((2, 640, 32, 32), (2, 640, 32, 32)), ((2, 640, 32, 32), (1, 640, 1, 1)), ((3, 1, 1100, 320), (1, 1, 1100, 320)), ((2, 700, 800), ())],
    ids=["same", "per-channel", "batch-broadcast", "scalar"],
)
def test_large_binary_ops_in_slabs_equal_numpy(run, op_type, ufunc, x_shape, y_shape):
    from bench.engines.reference.ops import _util

    before = _util.num_threads()
    _util.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(x_shape).astype(F32)
        y = (rng.standard_normal(y_shape) + 3.0).astype(F32)
        out = run(op_type, x=x, y=y)
        assert out.dtype == F32 and out.shape == np.broadcast_shapes(x_shape, y_shape)
        np.testing.assert_array_equal(out, ufunc(x, y))
        mixed = run(op_type, x=x, y=np.float64(2.5))  # a float64 scalar still gives float32, as numpy's result cast
        np.testing.assert_array_equal(mixed, ufunc(x, np.float64(2.5)).astype(F32))
    finally:
        _util.set_num_threads(before)
