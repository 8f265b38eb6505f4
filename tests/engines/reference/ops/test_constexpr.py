"""Constexpr (compressed weight) kernels.

Part 1 checks each kernel on hand-built inputs against formulas written here (bit packing done
with np.packbits, tables looked up with explicit loops) and against the worked examples in
coremltools' op docstrings. Part 2 compresses real models with coremltools.optimize.coreml
(palettization, linear quantization, pruning, joint compression; iOS16 and iOS18 forms), reads
them with the reference loader, decompresses with these kernels and compares against
coremltools' own `decompress_weights` and against the original weight; it also runs predict.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from bench.engines.reference.graph import Ref
from bench.engines.reference.ops import get_kernel
from bench.errors import ModelFormatError

F32 = np.float32
I32 = np.int32


def pack_lsb_first(values: np.ndarray, nbits: int) -> np.ndarray:
    """Pack unsigned nbits-bit values LSB first into bytes (independent of the kernel's unpacker)."""
    bits = ((values.reshape(-1, 1).astype(np.int64) >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little")


# -- Part 1: kernels on hand-built inputs -------------------------------------------------------------------


def test_lut_ios16_docstring_example(run):
    # coremltools docstring: n_bits = 2, shape (5,): byte0 = i3 i2 i1 i0 (MSB..LSB), byte1 = .. i4
    indices = np.array([0b01_10_11_00, 0b00_00_00_11], np.uint8)  # i0=0, i1=3, i2=2, i3=1, i4=3
    lut = np.array([10, 20, 30, 40], F32)
    out = run("constexpr_lut_to_dense", indices=indices, lut=lut, shape=np.array([5], np.uint32))
    np.testing.assert_array_equal(out, [10, 40, 30, 20, 40])
    assert out.dtype == F32


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("shape", [(7,), (4, 6), (3, 5, 3)])
def test_lut_ios16_packed(run, rng, nbits, shape):
    n = math.prod(shape)
    idx = rng.integers(0, 2**nbits, size=n)
    lut = rng.standard_normal(2**nbits).astype(F32)
    out = run("constexpr_lut_to_dense", indices=pack_lsb_first(idx, nbits), lut=lut, shape=np.array(shape, np.uint32))
    expected = np.array([lut[i] for i in idx]).reshape(shape)
    np.testing.assert_array_equal(out, expected)


def test_lut_ios16_int8_entries_stay_int8(run, rng):
    idx = rng.integers(0, 4, size=10)
    lut = np.array([-128, -1, 5, 127], np.int8)
    out = run("constexpr_lut_to_dense", outputs=[("int8", (10,))], indices=pack_lsb_first(idx, 2), lut=lut,
              shape=np.array([10], np.uint32))
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, lut[idx])


def test_lut_ios18_docstring_case1_grouped(run):
    indices = np.array([2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3], np.uint8).reshape(6, 2)
    lut = np.array([1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0], F32).reshape(2, 1, 4, 1)
    out = run("constexpr_lut_to_dense", indices=indices, lut=lut)
    np.testing.assert_array_equal(out, [[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]])


@pytest.mark.parametrize("vector_axis, expected", [
    (1, [[[0, 0], [1, 1], [2, 2], [3, 0], [4, 1], [5, 2]], [[3, 3], [4, 4], [5, 5], [0, 0], [1, 1], [2, 2]]]),
    (2, [[[0, 1, 2, 0, 1, 2], [3, 4, 5, 0, 1, 2]], [[3, 4, 5, 3, 4, 5], [0, 1, 2, 0, 1, 2]]]),
])
def test_lut_ios18_docstring_case2_vector(run, vector_axis, expected):
    # centroids a = (a0, a1, a2) = (0, 1, 2) and b = (3, 4, 5)
    indices = np.array([[[0, 0], [1, 0]], [[1, 1], [0, 0]]], np.uint8)
    lut = np.array([0, 1, 2, 3, 4, 5], np.int8).reshape(1, 1, 1, 2, 3)
    out = run("constexpr_lut_to_dense", indices=indices, lut=lut, vector_axis=np.int32(vector_axis))
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("groups, vsize, vector_axis", [
    ((4, 1, 1, 1), 1, None),  # per-grouped-channel scalar palettization of a conv weight
    ((2, 3, 1, 1), 1, None),
    ((1, 1, 1, 1), 2, 0),  # per-tensor vector palettization along output channels
    ((2, 1, 1, 1), 2, 1),
    ((1, 2, 1, 1), 3, -1),
])
def test_lut_ios18_random_against_loops(run, rng, groups, vsize, vector_axis):
    idx_shape = (8, 6, 3, 3) if vsize == 1 else tuple(
        d // vsize if i == (vector_axis % 4) else d for i, d in enumerate((8, 6, 3, 6 if vsize == 3 else 3))
    )
    nbits = 3
    idx = rng.integers(0, 2**nbits, size=idx_shape).astype(np.uint8)
    lut = rng.standard_normal(groups + (2**nbits, vsize)).astype(F32)
    kwargs = {} if vector_axis is None else {"vector_axis": np.int32(vector_axis)}
    out = run("constexpr_lut_to_dense", indices=idx, lut=lut, **kwargs)
    block = [d // g for d, g in zip(idx_shape, groups)]
    out_shape = list(idx_shape)
    if vsize > 1:
        out_shape[vector_axis % 4] *= vsize
    expected = np.zeros(out_shape, F32)
    for pos in np.ndindex(*idx_shape):
        group = tuple(p // b for p, b in zip(pos, block))
        entry = lut[group + (idx[pos],)]
        for v in range(vsize):
            target = list(pos)
            if vsize > 1:
                target[vector_axis % 4] = pos[vector_axis % 4] * vsize + v
            expected[tuple(target)] = entry[v]
    np.testing.assert_array_equal(out, expected)


def test_lut_errors(run):
    with pytest.raises(ModelFormatError, match="2\\^n"):
        run("constexpr_lut_to_dense", indices=np.zeros(1, np.uint8), lut=np.zeros(3, F32), shape=np.array([2], np.uint32))
    with pytest.raises(ModelFormatError, match="vector_axis"):
        run("constexpr_lut_to_dense", indices=np.zeros((2, 2), np.uint8), lut=np.zeros((1, 1, 2, 2), F32))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("qdtype", [np.uint8, np.int8])
def test_affine_dequantize(run, rng, axis, qdtype):
    info = np.iinfo(qdtype)
    q = rng.integers(info.min, info.max + 1, size=(4, 5)).astype(qdtype)
    n = q.shape[axis]
    scale = rng.uniform(0.01, 0.1, n).astype(F32)
    zp = rng.integers(info.min, info.max + 1, size=n).astype(qdtype)
    out = run("constexpr_affine_dequantize", quantized_data=q, zero_point=zp, scale=scale, axis=np.int32(axis))
    shape = [1, 1]
    shape[axis] = n
    expected = scale.reshape(shape).astype(np.float64) * (q.astype(np.float64) - zp.reshape(shape).astype(np.float64))
    assert out.dtype == F32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    scalar = run("constexpr_affine_dequantize", quantized_data=q, zero_point=np.float32(3.5), scale=np.float32(0.5),
                 axis=np.int32(axis))
    np.testing.assert_allclose(scalar, 0.5 * (q.astype(np.float64) - 3.5), rtol=1e-6)


@pytest.mark.parametrize("scale_shape", [(4, 1), (4, 3), (1, 6), (2, 2), (1, 1)])
@pytest.mark.parametrize("with_offset", [True, False])
def test_blockwise_shift_scale(run, rng, scale_shape, with_offset):
    data = rng.integers(-8, 8, size=(4, 6)).astype(np.int8)  # int4 values held in int8
    scale = rng.uniform(0.1, 1.0, scale_shape).astype(F32)
    offset = rng.integers(-8, 8, size=scale_shape).astype(np.int8) if with_offset else None
    kwargs = {"offset": offset} if with_offset else {}
    out = run("constexpr_blockwise_shift_scale", data=data, scale=scale, **kwargs)
    b0, b1 = 4 // scale_shape[0], 6 // scale_shape[1]
    expected = np.empty((4, 6))
    for i in range(4):
        for j in range(6):
            o = offset[i // b0, j // b1] if with_offset else 0
            expected[i, j] = scale[i // b0, j // b1] * (float(data[i, j]) - float(o))
    assert out.dtype == F32
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_blockwise_shift_scale_float_data_and_errors(run):
    data = np.array([[1.0, 2.0], [3.0, 4.0]], F32)
    out = run("constexpr_blockwise_shift_scale", data=data, scale=np.array([[2.0], [0.5]], F32),
              offset=np.array([[1.0], [0.0]], F32))
    np.testing.assert_allclose(out, [[0, 2], [1.5, 2]])
    with pytest.raises(ModelFormatError, match="divide"):
        run("constexpr_blockwise_shift_scale", data=np.zeros((4, 6), np.int8), scale=np.ones((3, 1), F32))


def test_sparse_to_dense_ios16_docstring_and_random(run, rng):
    # docstring: shape (5,), mask byte = x x x 0 1 1 0 0 (MSB..LSB): i2 and i3 set
    out = run("constexpr_sparse_to_dense", nonzero_data=np.array([7, 9], F32), mask=np.array([0b00001100], np.uint8),
              shape=np.array([5], np.uint32))
    np.testing.assert_array_equal(out, [0, 0, 7, 9, 0])
    dense = rng.standard_normal((6, 7)).astype(F32) * (rng.random((6, 7)) > 0.6)
    bits = (dense != 0).astype(np.uint8)
    out = run("constexpr_sparse_to_dense", nonzero_data=dense[dense != 0], mask=np.packbits(bits.reshape(-1), bitorder="little"),
              shape=np.array([6, 7], np.uint32))
    np.testing.assert_array_equal(out, dense)


def test_sparse_to_dense_ios18_and_int_data(run, rng):
    dense = rng.integers(-8, 8, size=(5, 4)).astype(np.int8)
    dense[dense > 2] = 0
    out = run("constexpr_sparse_to_dense", outputs=[("int4", (5, 4))], nonzero_data=dense[dense != 0],
              mask=(dense != 0).astype(np.uint8))
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, dense)
    with pytest.raises(ModelFormatError, match="set bits"):
        run("constexpr_sparse_to_dense", nonzero_data=np.ones(3, F32), mask=np.ones((2, 2), np.uint8))


DOC_MASK = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1], [0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 0, 0]], np.uint8)
DOC_NONZERO = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1], np.uint8)


def test_lut_to_sparse_docstring_scalar_and_vector(run):
    mask, values = run("constexpr_lut_to_sparse", indices_mask=DOC_MASK, indices_nonzero_data=DOC_NONZERO,
                       lut=np.array([2.0, 3.0], F32).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(mask, DOC_MASK)
    np.testing.assert_array_equal(values, [2, 3, 3, 2, 3, 3, 2, 2, 3])
    mask, values = run("constexpr_lut_to_sparse", indices_mask=DOC_MASK, indices_nonzero_data=DOC_NONZERO,
                       lut=np.array([[2.0, 2.0], [3.0, 3.0]], F32).reshape(1, 1, 2, 2), vector_axis=np.int32(0))
    np.testing.assert_array_equal(mask, np.repeat(DOC_MASK, 2, axis=0))
    dense = run("constexpr_sparse_to_dense", nonzero_data=values, mask=mask)
    expected = np.zeros((8, 6), F32)
    expected[np.repeat(DOC_MASK, 2, axis=0) != 0] = 0
    rows = [[2, 3, 0, 0, 0, 0], [2, 3, 0, 0, 0, 0], [3, 2, 0, 0, 0, 3], [3, 2, 0, 0, 0, 3],
            [0, 3, 2, 0, 2, 0], [0, 3, 2, 0, 2, 0], [0, 0, 0, 3, 0, 0], [0, 0, 0, 3, 0, 0]]
    np.testing.assert_array_equal(dense, rows)


def test_sparse_blockwise_shift_scale_docstring(run):
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], np.uint8)
    nonzero = np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8)
    out_mask, values = run("constexpr_sparse_blockwise_shift_scale", data_mask=mask, nonzero_data=nonzero,
                           scale=np.array([[0.1, 0.2, 0.3, 0.4]], F32), offset=np.array([[1, 2, 3, 4]], np.int8))
    np.testing.assert_array_equal(out_mask, mask)
    np.testing.assert_allclose(values, [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4], rtol=1e-6)


def test_chain_int8_lut_then_blockwise_then_cast(run, rng):
    idx = rng.integers(0, 16, size=(4, 8)).astype(np.uint8)
    lut8 = rng.integers(-128, 128, size=(1, 1, 16, 1)).astype(np.int8)
    dense8 = run("constexpr_lut_to_dense", indices=idx, lut=lut8)
    assert dense8.dtype == np.int8
    scale = rng.uniform(0.01, 0.1, (4, 1)).astype(F32)
    out = run("constexpr_blockwise_shift_scale", data=dense8, scale=scale)
    np.testing.assert_allclose(out, scale * lut8.reshape(-1)[idx].astype(np.float64), rtol=1e-6)
    casted = run("constexpr_cast", source_val=np.array([1.5, -2.0], np.float16), output_dtype="fp32")
    assert casted.dtype == F32 and casted.tolist() == [1.5, -2.0]


def test_constexpr_family():
    for op_type in ("constexpr_lut_to_dense", "constexpr_affine_dequantize", "constexpr_blockwise_shift_scale",
                    "constexpr_sparse_to_dense", "constexpr_lut_to_sparse", "constexpr_sparse_blockwise_shift_scale",
                    "constexpr_cast"):
        kernel = get_kernel(op_type)
        assert kernel.is_constexpr and kernel.doc.startswith("MIL ")


# -- Part 2: real models compressed by coremltools ---------------------------------------------------------

ct = pytest.importorskip("coremltools")


def _widen(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(F32)
    return value


def decompress_with_kernels(program) -> dict[str, np.ndarray]:
    """Every const and constexpr output of the main function, computed with the registered kernels."""
    values: dict[str, np.ndarray] = {}

    def resolve(binding):
        if isinstance(binding, tuple):
            return [resolve(b) for b in binding]
        return values[binding.name] if isinstance(binding, Ref) else _widen(binding)

    for op in program.main.operations:
        if op.type == "const":
            values[op.outputs[0].name] = _widen(op.attributes["val"])
        elif op.type.startswith("constexpr_"):
            kwargs = {k: resolve(v) for k, v in op.inputs.items()}
            kwargs.update({k: _widen(v) for k, v in op.attributes.items()})
            result = get_kernel(op.type).fn(op, **kwargs)
            for value, array in zip(op.outputs, result if isinstance(result, tuple) else (result,)):
                values[value.name] = array
    return values


def coremltools_decompressed(model) -> dict[str, np.ndarray]:
    """coremltools' own decompression: decompress_weights folds every constexpr chain into a const."""
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.frontend.milproto.load import load

    plain = cto.decompress_weights(model)
    spec = plain.get_spec()
    prog = load(spec, spec.specificationVersion, file_weights_dir=plain.weights_dir)
    return {op.outputs[0].name: np.asarray(op.outputs[0].val) for op in prog.functions["main"].operations if op.op_type == "const"}


WEIGHTS = {
    "linear": np.random.default_rng(7).standard_normal((64, 96)).astype(F32),
    "conv": np.random.default_rng(8).standard_normal((32, 16, 3, 3)).astype(F32),
}


def build_model(kind: str, target):
    from coremltools.converters.mil import Builder as mb

    w = WEIGHTS[kind]
    shape = (1, w.shape[1]) if kind == "linear" else (1, w.shape[1], 6, 6)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=target)
    def prog(x):
        if kind == "linear":
            return mb.linear(x=x, weight=w, bias=np.arange(w.shape[0], dtype=F32), name="y")
        return mb.conv(x=x, weight=w, pad_type="same", name="y")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                          compute_precision=ct.precision.FLOAT32)


def _configs():
    import coremltools.optimize.coreml as cto

    pal, quant, prune = cto.palettize_weights, cto.linear_quantize_weights, cto.prune_weights
    P, Q, M = cto.OpPalettizerConfig, cto.OpLinearQuantizerConfig, cto.OpMagnitudePrunerConfig
    ios16, ios18 = ct.target.iOS16, ct.target.iOS18
    return {
        # name: (target, [(compress function, op config, joint_compression)], expected constexpr types)
        "ios16-lut1": (ios16, [(pal, P(mode="uniform", nbits=1), False)], {"constexpr_lut_to_dense"}),
        "ios16-lut2": (ios16, [(pal, P(mode="uniform", nbits=2), False)], {"constexpr_lut_to_dense"}),
        "ios16-lut4": (ios16, [(pal, P(mode="uniform", nbits=4), False)], {"constexpr_lut_to_dense"}),
        "ios16-lut6": (ios16, [(pal, P(mode="uniform", nbits=6), False)], {"constexpr_lut_to_dense"}),
        "ios16-lut8": (ios16, [(pal, P(mode="uniform", nbits=8), False)], {"constexpr_lut_to_dense"}),
        "ios16-int8-linear": (ios16, [(quant, Q(mode="linear", dtype="int8"), False)], {"constexpr_affine_dequantize"}),
        "ios16-uint8-sym": (ios16, [(quant, Q(mode="linear_symmetric", dtype="uint8"), False)], {"constexpr_affine_dequantize"}),
        "ios16-prune": (ios16, [(prune, M(target_sparsity=0.6), False)], {"constexpr_sparse_to_dense"}),
        "ios18-lut4-tensor": (ios18, [(pal, P(mode="uniform", nbits=4), False)], {"constexpr_lut_to_dense"}),
        "ios18-lut2-grouped": (ios18, [(pal, P(mode="uniform", nbits=2, granularity="per_grouped_channel", group_size=8), False)],
                               {"constexpr_lut_to_dense"}),
        "ios18-lut3-grouped": (ios18, [(pal, P(mode="uniform", nbits=3, granularity="per_grouped_channel", group_size=16), False)],
                               {"constexpr_lut_to_dense"}),
        "ios18-lut6-grouped": (ios18, [(pal, P(mode="uniform", nbits=6, granularity="per_grouped_channel", group_size=4), False)],
                               {"constexpr_lut_to_dense"}),
        "ios18-lut4-channel-scale": (ios18, [(pal, P(mode="uniform", nbits=4, enable_per_channel_scale=True), False)],
                                     {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"}),
        "ios18-int8-channel": (ios18, [(quant, Q(mode="linear", dtype="int8"), False)], {"constexpr_blockwise_shift_scale"}),
        "ios18-int4-block": (ios18, [(quant, Q(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=16), False)],
                             {"constexpr_blockwise_shift_scale"}),
        "ios18-uint4-block": (ios18, [(quant, Q(mode="linear", dtype="uint4", granularity="per_block", block_size=8), False)],
                              {"constexpr_blockwise_shift_scale"}),
        "ios18-prune": (ios18, [(prune, M(target_sparsity=0.5), False)], {"constexpr_sparse_to_dense"}),
        "ios18-prune+lut4": (ios18, [(prune, M(target_sparsity=0.5), False), (pal, P(mode="uniform", nbits=4), True)],
                            {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"}),
        "ios18-prune+int8": (ios18, [(prune, M(target_sparsity=0.5), False), (quant, Q(mode="linear", dtype="int8"), True)],
                             {"constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense"}),
        "ios18-lut4+int8": (ios18, [(pal, P(mode="uniform", nbits=4), False), (quant, Q(mode="linear_symmetric", dtype="int8", granularity="per_tensor"), True)],
                           {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"}),
    }


CONFIG_NAMES = [
    "ios16-lut1", "ios16-lut2", "ios16-lut4", "ios16-lut6", "ios16-lut8", "ios16-int8-linear", "ios16-uint8-sym",
    "ios16-prune", "ios18-lut4-tensor", "ios18-lut2-grouped", "ios18-lut3-grouped", "ios18-lut6-grouped",
    "ios18-lut4-channel-scale", "ios18-int8-channel", "ios18-int4-block", "ios18-uint4-block", "ios18-prune",
    "ios18-prune+lut4", "ios18-prune+int8", "ios18-lut4+int8",
]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    import coremltools.optimize.coreml as cto

    folder = tmp_path_factory.mktemp("compressed")
    cache: dict[tuple[str, str], tuple[Path, object]] = {}

    def get(kind: str, name: str):
        if (kind, name) not in cache:
            target, steps, _ = _configs()[name]
            model = build_model(kind, target)
            for fn, op_config, joint in steps:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = fn(model, cto.OptimizationConfig(global_config=op_config), joint_compression=joint)
            path = folder / f"{kind}-{name}.mlpackage"
            model.save(str(path))
            cache[(kind, name)] = (path, model)
        return cache[(kind, name)]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_real_compressed_weights(compressed, kind, name):
    from bench.engines.reference.proto_loader import read_mlpackage

    path, model = compressed(kind, name)
    program = read_mlpackage(path)
    used = {op.type for op in program.main.operations if op.type.startswith("constexpr_")}
    assert used == _configs()[name][2], f"{name} emitted {used}"
    mine = decompress_with_kernels(program)
    theirs = coremltools_decompressed(model)
    weight_op = next(op for op in program.main.operations if op.type in ("linear", "conv"))
    weight_name = weight_op.inputs["weight"].name
    assert weight_name in theirs, f"coremltools folded no const named {weight_name}"
    ours = mine[weight_name]
    assert ours.dtype == F32 and ours.shape == WEIGHTS[kind].shape
    np.testing.assert_allclose(ours, theirs[weight_name].astype(F32), rtol=1e-6, atol=1e-7)
    # and the decompressed weight is a plausible approximation of the original one
    original = WEIGHTS[kind]
    error = np.abs(ours - original)
    if "prune" in name:
        kept = ours != 0
        assert 0.3 < 1 - kept.mean() < 0.7
        if name.endswith("prune"):
            np.testing.assert_array_equal(ours[kept], original[kept])
    if "prune" not in name or "+" in name:
        # n-bit uniform palettization / quantization: the mean error stays well under one step
        nbits = min(int(bits) for bits in re.findall(r"(?:lut|int)(\d)", name))
        step = (original.max() - original.min()) / 2**nbits
        considered = error[ours != 0] if "prune" in name else error
        assert considered.mean() < step, f"{name}: mean error {considered.mean()} vs step {step}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ios16-lut4", "ios18-lut3-grouped", "ios18-int4-block", "ios18-prune+lut4"])
def test_compressed_model_predicts_with_decompressed_weight(compressed, name):
    from bench.engines.reference.model import load

    path, model = compressed("linear", name)
    theirs = coremltools_decompressed(model)
    weight = next(v for k, v in theirs.items() if v.ndim == 2)
    x = np.random.default_rng(3).standard_normal((1, 96)).astype(F32)
    y = load(path).predict({"x": x})["y"]
    expected = x.astype(np.float64) @ weight.astype(np.float64).T + np.arange(64)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("vector_axis", [0, 1])
def test_real_vector_palettized_program(tmp_path, vector_axis):
    """iOS18 vector palettization written by coremltools' serializer (sub-byte uint2 indices in weight.bin)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from bench.engines.reference.proto_loader import read_mlpackage

    rng = np.random.default_rng(11)
    vsize = 2
    idx_shape = (16, 24) if vector_axis == 1 else (8, 48)
    indices = rng.integers(0, 4, size=idx_shape).astype(types.np_uint2_dtype)
    lut = rng.standard_normal((2, 1, 4, vsize)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 48))], opset_version=ct.target.iOS18)
    def prog(x):
        w = mb.constexpr_lut_to_dense(indices=indices, lut=lut, vector_axis=vector_axis, name="w")
        return mb.linear(x=x, weight=w, name="y")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18)
    path = tmp_path / "vector.mlpackage"
    model.save(str(path))
    program = read_mlpackage(path)
    mine = decompress_with_kernels(program)["w"]
    theirs = coremltools_decompressed(model)["w"]
    assert mine.shape == (16, 48)
    np.testing.assert_array_equal(mine, theirs.astype(F32))
