"""The interpreter: constants and constexpr ops evaluated once at load, pre-resolved steps, liveness."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from mil_programs import (
    CONSTEXPR_CALLS,
    const,
    conv_add_program,
    ensure_kernels,
    op,
    program,
    t,
)

from bench.engines.reference.graph import Ref
from bench.engines.reference.interpreter import CompiledFunction
from bench.engines.reference.model import ReferenceModel
from bench.errors import ModelFormatError, OpExecutionError, UnsupportedOpError

PATH = Path("test.mlpackage")


@pytest.fixture(autouse=True)
def _kernels():
    ensure_kernels()


def test_constexpr_runs_once_at_load_not_per_predict():
    ops = [
        const("w", np.arange(4, dtype=np.float32)),
        op("test_counting_constexpr", "double_w", [("w2", t("fp32", 4))], x="w"),
        op("add", "add1", [("y", t("fp32", 4))], x="x", y="w2"),
    ]
    CONSTEXPR_CALLS["count"] = 0
    model = ReferenceModel(PATH, program([("x", t("fp32", 4))], ops, ["y"]))
    assert CONSTEXPR_CALLS["count"] == 1
    for _ in range(3):
        out = model.predict({"x": np.ones(4, np.float32)})
        np.testing.assert_array_equal(out["y"], 1 + 2 * np.arange(4))
    assert CONSTEXPR_CALLS["count"] == 1
    assert model.op_count == 1  # only the add runs per predict


def test_ios16_constexpr_attributes_are_passed_as_parameters():
    quantized = np.array([[0, 2], [4, 6]], dtype=np.int8)
    dq = op("constexpr_affine_dequantize", "dq", [("w", t("fp16", 2, 2))])
    dq.attributes.update(
        quantized_data=quantized,
        zero_point=np.int8(0) * np.ones((), np.int8),
        scale=np.array([0.5, 0.25], dtype=np.float16),
        axis=np.array(0, dtype=np.int32),
    )
    ops = [dq, op("add", "add1", [("y", t("fp32", 2, 2))], x="x", y="w")]
    out = ReferenceModel(PATH, program([("x", t("fp32", 2, 2))], ops, ["y"])).predict({"x": np.zeros((2, 2), np.float32)})
    np.testing.assert_array_equal(out["y"], [[0, 1], [1, 1.5]])


def test_constexpr_reading_a_runtime_value_is_a_format_error():
    ops = [op("test_counting_constexpr", "bad", [("w2", t("fp32", 4))], x="x")]
    with pytest.raises(ModelFormatError, match=r"op 'bad' \(test_counting_constexpr\): parameter 'x' reads 'x', which is not a constant"):
        CompiledFunction(program([("x", t("fp32", 4))], ops, ["w2"]).main, PATH)


def test_steps_hold_constants_and_slots_resolved_in_advance():
    prog, _ = conv_add_program()
    compiled = CompiledFunction(prog.main, PATH)
    conv, add = compiled.steps
    assert set(conv.static) == {"weight", "bias", "pad_type"} and conv.static["pad_type"] == "same"
    assert [param for param, _ in conv.refs] == ["x"]
    assert isinstance(add.static["y"], np.ndarray) and add.static["y"].dtype == np.float32
    assert [param for param, _ in add.refs] == ["x"]


def test_liveness_frees_each_intermediate_after_its_last_reader():
    # x -> a -> b -> c -> y, plus a read again by the last op: a lives until then.
    ops = [
        op("relu", "r1", [("a", t("fp32", 4))], x="x"),
        op("relu", "r2", [("b", t("fp32", 4))], x="a"),
        op("relu", "r3", [("c", t("fp32", 4))], x="b"),
        op("add", "r4", [("y", t("fp32", 4))], x="c", y="a"),
        op("split", "s", [("unused", t("fp32", 2)), ("half", t("fp32", 2))], x="y", axis=np.int32(0), num_splits=np.int32(2)),
    ]
    compiled = CompiledFunction(program([("x", t("fp32", 4))], ops, ["y", "half"]).main, PATH)
    slot = compiled._slots
    freed = {step.op.name: sorted(step.free) for step in compiled.steps}
    assert freed == {
        "r1": [slot["x"]],
        "r2": [],
        "r3": [slot["b"]],
        "r4": sorted([slot["a"], slot["c"]]),
        "s": [slot["unused"]],  # never read: freed right after it is made; y and half are outputs
    }


@pytest.mark.parametrize(("precision", "bound"), [("fp32", 2.5), ("fp16", 3.0)])
@pytest.mark.parametrize("profiled", [False, True])
def test_dead_intermediates_do_not_accumulate_in_memory(precision, bound, profiled):
    # A chain of 12 ops on a 4 MB tensor: if intermediates were kept, peak would be ~50 MB.
    # Only the current op's input and output may be live (fp16 adds a float16 temporary and the
    # float16 copy of the result), so the peak stays near 2 tensors.
    n, size = 12, 1 << 20
    ops = [op("relu", f"r{i}", [(f"v{i + 1}", t("fp32", size))], x=f"v{i}") for i in range(n)]
    model = ReferenceModel(PATH, program([("v0", t("fp32", size))], ops, [f"v{n}"]), precision)
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    run = model.profile if profiled else model.predict
    run({"v0": x})  # warm up
    tracemalloc.start()
    try:
        run({"v0": x})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < bound * x.nbytes, f"peak {peak / 1e6:.1f} MB for {x.nbytes / 1e6:.1f} MB tensors"


def test_unknown_op_type_is_reported_at_load_with_path_type_and_name():
    ops = [
        op("frobnicate", "frob_1", [("a0", t("fp32", 4))], x="x"),
        op("relu", "known", [("a", t("fp32", 4))], x="a0"),  # a supported reader of an unsupported op
        op("wibble", "w_1", [("b", t("fp32", 4))], x="a"),
        op("frobnicate", "frob_2", [("y", t("fp32", 4))], x="b"),
    ]
    with pytest.raises(UnsupportedOpError) as caught:
        ReferenceModel(Path("models/unet.mlmodelc"), program([("x", t("fp32", 4))], ops, ["y"]))
    message = str(caught.value)
    assert "models/unet.mlmodelc" in message
    assert "op 'frob_1' (frobnicate)" in message and "no kernel for op type 'frobnicate'" in message
    assert "3 unsupported op(s)" in message and "wibble" in message


def test_kernel_errors_are_wrapped_with_op_model_and_input_shapes():
    ops = [op("test_always_fails", "bad_op", [("y", t("fp32", 2, 3))], x="x")]
    model = ReferenceModel(Path("m.mlpackage"), program([("x", t("fp32", 2, 3))], ops, ["y"]))
    with pytest.raises(OpExecutionError) as caught:
        model.predict({"x": np.zeros((2, 3), np.float32)})
    message = str(caught.value)
    assert "m.mlpackage: op 'bad_op' (test_always_fails) failed: ValueError" in message
    assert "x=float32[2, 3]" in message


def test_output_shape_is_checked_against_the_declared_type():
    ops = [op("relu", "r", [("y", t("fp32", 5))], x="x")]
    model = ReferenceModel(PATH, program([("x", t("fp32", 4))], ops, ["y"]))
    with pytest.raises(OpExecutionError, match=r"op 'r' \(relu\): output 'y' has shape \(4,\), the program declares \(5,\)"):
        model.predict({"x": np.zeros(4, np.float32)})


def test_variadic_parameters_mix_constants_and_runtime_values():
    ops = [
        const("c", np.full((1, 2), 7, np.float32)),
        op("concat", "cat", [("y", t("fp32", 3, 2))], values=["x", "c", "x"], axis=np.int32(0)),
    ]
    model = ReferenceModel(PATH, program([("x", t("fp32", 1, 2))], ops, ["y"]))
    step = model._compiled.steps[0]
    assert step.lists and step.lists[0][0] == "values"
    out = model.predict({"x": np.ones((1, 2), np.float32)})
    np.testing.assert_array_equal(out["y"], [[1, 1], [7, 7], [1, 1]])


def test_fp16_constants_are_widened_and_outputs_may_be_constants_or_inputs():
    ops = [const("w", np.array([1.5, 2.5], np.float16))]
    model = ReferenceModel(PATH, program([("x", t("fp32", 2))], ops, ["w", "x"]))
    x = np.array([3.0, 4.0], np.float32)
    out = model.predict({"x": x})
    assert out["w"].dtype == np.float32 and out["w"].tolist() == [1.5, 2.5]
    assert out["x"] is not x and out["x"].tolist() == [3.0, 4.0]


def test_int_outputs_keep_their_declared_dtype():
    ops = [op("cast", "to_int", [("y", t("int32", 3))], x="x", dtype="dt"), const("dt", "int32")]
    ops.reverse()
    model = ReferenceModel(PATH, program([("x", t("fp32", 3))], ops, ["y"]))
    out = model.predict({"x": np.array([1.7, -2.2, 3.0], np.float32)})
    assert out["y"].dtype == np.int32 and out["y"].tolist() == [1, -2, 3]
    assert isinstance(model.function.operations[1].inputs["dtype"], Ref)


def test_constants_are_read_only_and_outputs_never_alias_them():
    from bench.engines.reference.ops.registry import register, registered_kernels

    def inplace(op, x):
        x += 1  # a buggy kernel writing into its input
        return x

    if "test_inplace" not in registered_kernels():
        register("test_inplace", family="elementwise")(inplace)
    ops = [const("w", np.arange(3, dtype=np.float32)), op("test_inplace", "bad", [("y", t("fp32", 3))], x="w")]
    model = ReferenceModel(PATH, program([], ops, ["y"]))
    with pytest.raises(OpExecutionError, match=r"op 'bad' \(test_inplace\) failed: ValueError: output array is read-only"):
        model.predict({})
    identity = ReferenceModel(PATH, program([], [ops[0], op("identity", "same", [("v", t("fp32", 3))], x="w")], ["v", "w"]))
    first = identity.predict({})
    first["v"][0] = 42  # the caller may write into what predict returned...
    first["w"][1] = 42
    assert identity.predict({})["v"].tolist() == [0, 1, 2]  # ...the model's weights are unchanged


def test_outputs_never_alias_the_callers_inputs():
    # reshape and transpose return views; an output computed that way must still be the model's own array.
    ops = [
        const("shape", np.array([3, 2], np.int32)),
        op("reshape", "flat", [("y", t("fp32", 3, 2))], x="x", shape="shape"),
    ]
    model = ReferenceModel(PATH, program([("x", t("fp32", 2, 3))], ops, ["y"]))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = model.predict({"x": x})["y"]
    y[0, 0] = 42
    assert x[0, 0] == 0
    assert y.tolist() == [[42, 1], [2, 3], [4, 5]]
