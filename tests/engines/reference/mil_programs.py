"""Test support for the reference engine core: small programs and stand-in kernels.

`ensure_kernels()` registers simple numpy kernels for the few op types these tests use, but only
for types the real kernel families (`bench.engines.reference.ops`) do not register, so the real
kernels are used wherever they exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bench.engines.reference.ops  # noqa: F401  (registers the real kernels first)
from bench.engines.reference.graph import (
    Function,
    Operation,
    Program,
    Ref,
    TensorType,
    Value,
)
from bench.engines.reference.ops.registry import register, registered_kernels

#: How often the counting constexpr kernel ran (tests check it runs once, at load).
CONSTEXPR_CALLS = {"count": 0}


def _conv(op, x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    strides = tuple(int(s) for s in np.asarray(strides).reshape(-1))
    kh, kw = weight.shape[2:]
    if str(pad_type) == "same":
        ph, pw = kh - 1, kw - 1
        pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    elif str(pad_type) == "custom":
        pads = tuple(int(p) for p in np.asarray(pad).reshape(-1))
    else:
        pads = (0, 0, 0, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, :: strides[0], :: strides[1]]
    out = np.einsum("bchwij,ocij->bohw", windows, weight, optimize=True)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def _cast(op, x, dtype):
    target = {"fp16": np.float32, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "bool": np.bool_}
    return x.astype(target.get(str(dtype), np.float32))


def _split(op, x, axis, num_splits=None, split_sizes=None):
    if split_sizes is not None:
        cuts = np.cumsum(np.asarray(split_sizes))[:-1]
        return tuple(np.split(x, cuts, axis=int(axis)))
    return tuple(np.split(x, int(num_splits), axis=int(axis)))


def _concat(op, values, axis, interleave=False):
    return np.concatenate(values, axis=int(axis))


def _affine(op, quantized_data, zero_point, scale, axis):
    shape = [1] * quantized_data.ndim
    axis = int(axis)
    scale = np.asarray(scale, dtype=np.float32)
    zero_point = np.asarray(zero_point, dtype=np.float32)
    if scale.ndim == 1:
        shape[axis] = -1
        scale = scale.reshape(shape)
    if zero_point.ndim == 1:
        shape[axis] = -1
        zero_point = zero_point.reshape(shape)
    return (quantized_data.astype(np.float32) - zero_point) * scale


def _counting_constexpr(op, x):
    """Test-only constexpr op: doubles a constant and counts its calls."""
    CONSTEXPR_CALLS["count"] += 1
    return x * 2


def _always_fails(op, x):
    """Test-only op whose kernel raises deep inside numpy."""
    return np.reshape(x, (7, 11, 13))


_STAND_INS = {
    "add": ("elementwise", lambda op, x, y: np.add(x, y)),
    "sub": ("elementwise", lambda op, x, y: np.subtract(x, y)),
    "mul": ("elementwise", lambda op, x, y: np.multiply(x, y)),
    "exp": ("elementwise", lambda op, x: np.exp(x)),
    "relu": ("elementwise", lambda op, x: np.maximum(x, 0)),
    "cast": ("elementwise", _cast),
    "conv": ("conv", _conv),
    "split": ("shape", _split),
    "concat": ("shape", _concat),
    "constexpr_affine_dequantize": ("constexpr", _affine),
    "test_counting_constexpr": ("constexpr", _counting_constexpr),
    "test_always_fails": ("elementwise", _always_fails),
}


def _conv_flops(op, inputs, outputs):
    weight = inputs["weight"]
    return 2.0 * outputs[0].size * int(np.prod(weight.shape[1:]))


def ensure_kernels() -> None:
    """Register the stand-in kernels for op types no real kernel covers yet."""
    existing = registered_kernels()
    for op_type, (family, fn) in _STAND_INS.items():
        if op_type not in existing:
            register(op_type, family=family, flops=_conv_flops if op_type == "conv" else None)(fn)


def t(dtype: str, *shape: int | None) -> TensorType:
    return TensorType(dtype, tuple(shape))


def const(name: str, value, dtype: str | None = None) -> Operation:
    """A const op producing `value` (dtype inferred from numpy unless given)."""
    if isinstance(value, str):
        vtype = TensorType("string", ())
    else:
        value = np.asarray(value)
        from bench.engines.reference.graph import default_mil_dtype

        vtype = TensorType(dtype or default_mil_dtype(value), value.shape)
    return Operation("const", name, {}, (Value(name, vtype),), {"val": value})


def op(op_type: str, name: str, outputs: list[tuple[str, TensorType]], **inputs) -> Operation:
    bound = {}
    for key, value in inputs.items():
        if isinstance(value, str):
            bound[key] = Ref(value)
        elif isinstance(value, list):
            bound[key] = tuple(Ref(v) if isinstance(v, str) else v for v in value)
        else:
            bound[key] = np.asarray(value)
    return Operation(op_type, name, bound, tuple(Value(n, ty) for n, ty in outputs))


def program(inputs: list[tuple[str, TensorType]], operations: list[Operation], outputs: list[str], opset: str = "ios17", version: str = "1.0") -> Program:
    function = Function("main", opset, tuple(Value(n, ty) for n, ty in inputs), operations, tuple(outputs))
    return Program(version, {"main": function})


def conv_add_program(precision_type: str = "fp32") -> tuple[Program, np.ndarray]:
    """x(1,3,8,8) -> conv 3x3 'same' with bias -> add 1.5 -> y; returns (program, weight)."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ops = [
        const("w", weight),
        const("b", np.arange(4, dtype=np.float32)),
        const("pad_type", "same"),
        const("one_five", np.float32(1.5)),
        op("conv", "conv1", [("c", t("fp32", 1, 4, 8, 8))], x="x", weight="w", bias="b", pad_type="pad_type"),
        op("add", "add1", [("y", t("fp32", 1, 4, 8, 8))], x="c", y="one_five"),
    ]
    return program([("x", t("fp32", 1, 3, 8, 8))], ops, ["y"]), weight


def build_mlpackage(path: Path, target: str, compute_precision: str = "fp32") -> Path:
    """A small conv/add/split/concat program converted with coremltools for deployment `target`."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(1)
    weight = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    deployment = getattr(ct.target, target)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8))], opset_version=deployment)
    def prog(x):
        y = mb.conv(x=x, weight=weight, bias=bias, pad_type="same", name="conv1")
        y = mb.add(x=y, y=np.float32(0.5), name="add1")
        a, b = mb.split(x=y, num_splits=2, axis=1, name="split1")
        return mb.concat(values=[b, a], axis=1, name="out")

    precision = ct.precision.FLOAT16 if compute_precision == "fp16" else ct.precision.FLOAT32
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=deployment, compute_precision=precision)
    model.save(str(path))
    return path


#: Deployment targets the converted test programs cover.
TARGETS: tuple[str, ...] = ("iOS15", "iOS16", "iOS17", "iOS18")

_PACKAGE_CACHE: dict[tuple[str, str], Path] = {}


def cached_mlpackage(target: str, compute_precision: str = "fp32") -> Path:
    """`build_mlpackage` once per test process (conversions are the slow part of these tests)."""
    import atexit
    import shutil
    import tempfile

    key = (target, compute_precision)
    if key not in _PACKAGE_CACHE:
        if not _PACKAGE_CACHE:
            root = Path(tempfile.mkdtemp(prefix="reference-packages-"))
            atexit.register(shutil.rmtree, root, True)
            _PACKAGE_CACHE[("root", "")] = root
        root = _PACKAGE_CACHE[("root", "")]
        _PACKAGE_CACHE[key] = build_mlpackage(root / f"{target}_{compute_precision}.mlpackage", target, compute_precision)
    return _PACKAGE_CACHE[key]


def reference_conv_add_split(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    y = _conv(None, x, weight, bias, pad_type="same") + 0.5
    a, b = np.split(y, 2, axis=1)
    return np.concatenate([b, a], axis=1)
