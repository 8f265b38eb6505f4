"""`reference.load` and `ReferenceModel`: specs, input validation, output dtypes, format detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mil_programs import const, conv_add_program, ensure_kernels, op, program, t

from bench.engines import reference
from bench.engines.base import Model, TensorSpec
from bench.engines.reference.model import ReferenceModel
from bench.errors import BenchError, InputError, ModelFormatError

PATH = Path("models/tiny.mlmodelc")


@pytest.fixture(autouse=True)
def _kernels():
    ensure_kernels()


def _mixed_model(precision="fp32"):
    """Inputs of four kinds: fp32, fp16, int32 ids and a bool mask; outputs of float and int."""
    ops = [
        const("dt", "int32"),
        op("add", "add_f", [("f", t("fp32", 2, 3))], x="a", y="h"),
        op("cast", "to_int", [("i", t("int32", 1, 4))], x="ids", dtype="dt"),
        op("relu", "pass_mask", [("m", t("fp16", 4))], x="h16"),
    ]
    prog = program(
        [("a", t("fp32", 2, 3)), ("h", t("fp16", 2, 3)), ("ids", t("int32", 1, 4)), ("h16", t("fp16", 4)), ("mask", t("bool", 2))],
        ops,
        ["f", "i", "m"],
    )
    return ReferenceModel(PATH, prog, precision)


def _inputs():
    return {
        "a": np.ones((2, 3), np.float32),
        "h": np.full((2, 3), 0.1, np.float16),
        "ids": np.array([[1, 2, 3, 4]], np.int32),
        "h16": np.array([1, 2, 3, 4], np.float16),
        "mask": np.array([True, False]),
    }


def test_specs_and_protocol():
    model = _mixed_model()
    assert isinstance(model, Model)
    assert model.input_specs[0] == TensorSpec("a", (2, 3), np.dtype(np.float32))
    assert model.input_specs[1].dtype == np.float16 and model.input_specs[2].dtype == np.int32
    assert [s.dtype for s in model.output_specs] == [np.float32, np.int32, np.float32]
    assert [s.dtype for s in _mixed_model("fp16").output_specs] == [np.float16, np.int32, np.float16]


def test_outputs_are_float32_in_fp32_and_float16_in_fp16_ints_unchanged():
    for precision, float_type in (("fp32", np.float32), ("fp16", np.float16)):
        out = _mixed_model(precision).predict(_inputs())
        assert out["f"].dtype == float_type and out["m"].dtype == float_type and out["i"].dtype == np.int32
        np.testing.assert_allclose(out["f"], 1 + np.float32(np.float16(0.1)), rtol=1e-3)


def test_missing_and_extra_inputs_name_the_model_and_the_inputs():
    model = _mixed_model()
    feeds = _inputs()
    del feeds["ids"]
    feeds["idz"] = np.zeros((1, 4), np.int32)
    with pytest.raises(InputError) as caught:
        model.predict(feeds)
    message = str(caught.value)
    assert str(PATH) in message and "missing input(s) 'ids'" in message and "unknown input(s) 'idz'" in message
    assert "ids: int32[1, 4]" in message


def test_wrong_shape_names_expected_and_got():
    feeds = _inputs()
    feeds["a"] = np.ones((3, 2), np.float32)
    with pytest.raises(InputError, match=r"tiny\.mlmodelc: input 'a' has shape \(3, 2\), expected a: float32\[2, 3\]"):
        _mixed_model().predict(feeds)
    feeds["a"] = np.ones((2, 3, 1), np.float32)
    with pytest.raises(InputError, match="has shape"):
        _mixed_model().predict(feeds)


def test_float_array_for_an_int_input_is_refused():
    feeds = _inputs()
    feeds["ids"] = feeds["ids"].astype(np.float32)
    with pytest.raises(InputError, match=r"input 'ids' has dtype float32, expected int32"):
        _mixed_model().predict(feeds)


def test_int_array_for_a_float_input_is_refused():
    feeds = _inputs()
    feeds["a"] = np.ones((2, 3), np.int32)
    with pytest.raises(InputError, match=r"input 'a' has dtype int32, expected a float array"):
        _mixed_model().predict(feeds)


def test_int64_ids_are_cast_when_they_fit_and_refused_when_not():
    feeds = _inputs()
    feeds["ids"] = np.array([[5, 6, 7, 8]], np.int64)
    assert _mixed_model().predict(feeds)["i"].tolist() == [[5, 6, 7, 8]]
    feeds["ids"] = np.array([[5, 6, 7, 2**40]], np.int64)
    with pytest.raises(InputError, match=r"input 'ids' has int64 values in \[5, 1099511627776\] that do not fit int32"):
        _mixed_model().predict(feeds)


def test_bool_input_needs_bool():
    feeds = _inputs()
    feeds["mask"] = np.array([1, 0], np.int32)
    with pytest.raises(InputError, match="input 'mask' has dtype int32, expected bool"):
        _mixed_model().predict(feeds)


def test_fp16_inputs_are_rounded_to_fp16_even_in_fp32_mode():
    prog = program([("h", t("fp16", 1))], [op("relu", "r", [("y", t("fp16", 1))], x="h")], ["y"])
    out = ReferenceModel(PATH, prog).predict({"h": np.array([0.1], np.float32)})
    assert out["y"][0] == np.float32(np.float16(0.1))


def test_load_detects_format_and_refuses_other_folders(tmp_path):
    prog, _ = conv_add_program()
    folder = reference.write_mlmodelc(prog, tmp_path / "m.mlmodelc")
    model = reference.load(folder)
    assert model.path == folder and model.precision == "fp32"
    assert model.predict({"x": np.zeros((1, 3, 8, 8), np.float32)})["y"].shape == (1, 4, 8, 8)
    with pytest.raises(ModelFormatError, match="no such model file or folder"):
        reference.load(tmp_path / "absent.mlpackage")
    (tmp_path / "other").mkdir()
    with pytest.raises(ModelFormatError, match="not a Core ML model folder"):
        reference.load(tmp_path / "other")
    with pytest.raises(BenchError, match="unknown precision 'fp8'"):
        reference.load(folder, precision="fp8")
    with pytest.raises(BenchError, match="no function 'decode'"):
        reference.load(folder, function="decode")


def test_close_releases_the_program():
    model = _mixed_model()
    model.close()
    with pytest.raises(BenchError, match="closed"):
        model.predict(_inputs())


def test_multifunction_models_run_the_chosen_function(tmp_path):
    from bench.engines.reference.graph import Function

    prog, _ = conv_add_program()
    double = Function("double", "ios17", (prog.main.inputs[0],), [op("add", "twice", [("y2", t("fp32", 1, 3, 8, 8))], x="x", y="x")], ("y2",))
    prog.functions["double"] = double
    folder = reference.write_mlmodelc(prog, tmp_path / "multi.mlmodelc")
    x = np.ones((1, 3, 8, 8), np.float32)
    model = reference.load(folder, function="double")
    assert [s.name for s in model.output_specs] == ["y2"]
    np.testing.assert_array_equal(model.predict({"x": x})["y2"], 2 * x)
    assert reference.load(folder).function.name == "main"
