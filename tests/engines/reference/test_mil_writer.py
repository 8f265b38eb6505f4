"""Writer + parser round trips: an .mlpackage written out as .mlmodelc reads back as the same graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mil_programs import (
    TARGETS,
    const,
    ensure_kernels,
    op,
    program,
    reference_conv_add_split,
    t,
)

from bench.engines import reference
from bench.engines.reference.graph import Ref, TensorType, first_difference
from bench.engines.reference.mil_text import parse_program
from bench.engines.reference.mil_writer import hex_float, write_mil_text
from bench.engines.reference.mlmodelc import read_mlmodelc, write_mlmodelc
from bench.engines.reference.proto_loader import read_mlpackage


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_mlpackage_and_its_mlmodelc_give_the_same_graph_and_outputs(packages, tmp_path, target, precision):
    ensure_kernels()
    package = packages[target, precision]
    from_proto = read_mlpackage(package)
    folder = write_mlmodelc(from_proto, tmp_path / "model.mlmodelc")
    text = (folder / "model.mil").read_text()
    assert text.startswith(f"program({'1.3' if target == 'iOS18' else '1.0'})")
    assert f"func main<{target.lower()}>" in text
    assert "BLOBFILE(path = " in text and (folder / "weights" / "weight.bin").is_file()
    from_text = read_mlmodelc(folder)
    assert first_difference(from_proto, from_text) is None

    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    a = reference.load(package).predict({"x": x})
    b = reference.load(folder).predict({"x": x})
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    expected = reference_conv_add_split(x, weight, bias)
    tolerance = 2e-2 if precision == "fp16" else 1e-4
    np.testing.assert_allclose(next(iter(a.values())), expected, rtol=tolerance, atol=tolerance)


@pytest.fixture(scope="module")
def compressed(packages, tmp_path_factory):
    """Palettized and linearly quantized variants: iOS16 (attribute form) and iOS18 (input form)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    root = tmp_path_factory.mktemp("compressed")
    out = {}
    for target in ("iOS16", "iOS18"):
        model = ct.models.MLModel(str(packages[target, "fp32"]), skip_model_load=True)
        lut = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=4, mode="uniform", weight_threshold=10))
        affine = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(weight_threshold=10))
        for kind, compressed_model in (
            ("lut", cto.palettize_weights(model, lut)),
            ("affine", cto.linear_quantize_weights(model, affine)),
        ):
            path = root / f"{target}_{kind}.mlpackage"
            compressed_model.save(str(path))
            out[target, kind] = path
    # A chain: the palettization LUT itself int8-quantized (iOS18 joint compression).
    per_tensor = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(weight_threshold=1, granularity="per_tensor"))
    palettized = ct.models.MLModel(str(out["iOS18", "lut"]), skip_model_load=True)
    joint = cto.linear_quantize_weights(palettized, per_tensor, joint_compression=True)
    out["iOS18", "joint"] = root / "iOS18_joint.mlpackage"
    joint.save(str(out["iOS18", "joint"]))
    return out


@pytest.mark.parametrize(
    ("target", "kind", "op_type"),
    [
        ("iOS16", "lut", "constexpr_lut_to_dense"),
        ("iOS16", "affine", "constexpr_affine_dequantize"),
        ("iOS18", "lut", "constexpr_lut_to_dense"),
        ("iOS18", "affine", "constexpr_blockwise_shift_scale"),
        ("iOS18", "joint", "constexpr_blockwise_shift_scale"),
    ],
)
def test_compressed_weight_forms_round_trip(compressed, tmp_path, target, kind, op_type):
    from_proto = read_mlpackage(compressed[target, kind])
    constexpr = next(o for o in from_proto.main.operations if o.type.startswith("constexpr_"))
    assert constexpr.type == op_type
    if target == "iOS16":  # iOS16 ... iOS17 serialize constexpr parameters as attributes
        assert constexpr.inputs == {} and constexpr.attributes
    else:  # iOS18 binds them as inline literal inputs
        assert constexpr.inputs and not constexpr.attributes
    if (target, kind) == ("iOS18", "lut"):
        assert constexpr.literal_dtypes == {"indices": "uint4"}
    if kind == "joint":  # the LUT of constexpr_lut_to_dense is the output of the dequantize op
        lut = next(o for o in from_proto.main.operations if o.type == "constexpr_lut_to_dense")
        assert lut.inputs["lut"] == Ref(constexpr.outputs[0].name)
    folder = write_mlmodelc(from_proto, tmp_path / "c.mlmodelc")
    assert first_difference(from_proto, read_mlmodelc(folder)) is None

    from bench.engines.reference.ops import registered_kernels

    used = {o.type for o in from_proto.main.operations} - {"const"}
    if used <= set(registered_kernels()):  # once every kernel exists: both loads compute the same
        x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
        a = reference.load(compressed[target, kind]).predict({"x": x})
        b = reference.load(folder).predict({"x": x})
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_writer_output_is_parsed_back_for_hand_built_literals():
    literals = {
        "f16": np.array([[1.5, -0.0], [65504.0, -6e-8]], dtype=np.float16),
        "f32": np.array([math.pi, -math.inf, 1e-45], dtype=np.float32),
        "i8": np.array([-128, 127], dtype=np.int8),
        "i64": np.array(-(2**40), dtype=np.int64),
        "u16": np.arange(3, dtype=np.uint16),
        "b": np.array([True, False, True]),
        "s": "a \"quoted\" \\ string",
        "strs": np.array(["x", "y"], dtype=object),
    }
    ops = [const(name, value) for name, value in literals.items()]
    ops.append(op("relu", "out", [("y", t("fp32", 2))], x="xin"))
    prog = program([("xin", t("fp32", 2))], ops, ["y"], opset="ios18", version="1.3")
    for version in ("1.0", "1.3"):
        prog.version = version
        parsed = parse_program(write_mil_text(prog), "w.mil")
        assert first_difference(prog, parsed) is None, version


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_hex_floats_are_exact(value):
    text = hex_float(value)
    parsed = parse_program(
        f"program(1.3)\n{{\n func main<ios18>(tensor<fp32, [1]> x) {{\n"
        f'  fp32 c = const()[name = string("c"), val = fp32({text})];\n'
        f'  tensor<fp32, [1]> y = add(x = x, y = c)[name = string("y")];\n }} -> (y);\n}}\n'
    )
    got = parsed.main.operations[0].attributes["val"]
    assert got.dtype == np.float32
    if math.isnan(value):
        assert np.isnan(got)
    else:
        assert float(got) == value and math.copysign(1, float(got)) == math.copysign(1, value)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["fp16", "fp32", "int8", "int32", "uint8", "uint4", "int4", "uint1", "uint2", "uint3", "uint6"]),
    st.lists(st.integers(1, 4), min_size=0, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_literals_of_every_dtype_survive_write_and_parse(tmp_path_factory, dtype, shape, seed):
    from bench.engines.reference.graph import MIL_DTYPES
    from bench.engines.reference.weights import SUB_BYTE_BITS

    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    if dtype.startswith("fp"):
        value = rng.standard_normal(shape).astype(MIL_DTYPES[dtype])
    elif dtype in SUB_BYTE_BITS:
        bits = SUB_BYTE_BITS[dtype]
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if dtype == "int4" else (0, 2**bits)
        value = rng.integers(low, high, shape).astype(MIL_DTYPES[dtype])
    else:
        info = np.iinfo(MIL_DTYPES[dtype])
        value = rng.integers(info.min, info.max, shape, endpoint=True).astype(MIL_DTYPES[dtype])
    c = const("c", value, dtype)
    lit = op("identity", "ident", [("y", TensorType(dtype, shape))], x="c")
    # The same value as an inline literal argument of another op, to exercise literal_dtypes.
    lit2 = op("identity", "ident2", [("z", TensorType(dtype, shape))], x=value)
    if dtype != "fp32" and dtype not in ("fp16", "int8", "int32", "uint8"):
        lit2.literal_dtypes["x"] = dtype
    prog = program([], [c, lit, lit2], ["y", "z"], opset="ios18", version="1.3")
    folder = write_mlmodelc(prog, tmp_path_factory.mktemp("lit"))
    assert first_difference(prog, read_mlmodelc(folder)) is None
