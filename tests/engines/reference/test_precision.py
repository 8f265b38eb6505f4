"""fp16 mode: every op's output rounded through float16, and the first op holding inf / nan reported."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from mil_programs import const, ensure_kernels, op, program, t

from bench.engines.reference.model import ReferenceModel
from bench.engines.reference.precision import NumericsWarning
from bench.errors import BenchError, NumericalError

PATH = Path("models/vae_decoder.mlpackage")


@pytest.fixture(autouse=True)
def _kernels():
    ensure_kernels()


def _overflowing_program():
    """x * x overflows fp16 for |x| > 255.9; then (x*x - x*x) turns the inf into nan."""
    ops = [
        op("mul", "square_1", [("sq", t("fp32", 4))], x="x", y="x"),
        op("sub", "diff_1", [("d", t("fp32", 4))], x="sq", y="sq"),
        const("scale", np.float32(1e-3)),
        op("mul", "rescale", [("y", t("fp32", 4))], x="sq", y="scale"),
    ]
    return program([("x", t("fp32", 4))], ops, ["y", "d"])


X = np.array([1.0, 100.0, 300.0, -400.0], np.float32)


def test_fp32_run_is_finite_and_not_checked_by_default():
    model = ReferenceModel(PATH, _overflowing_program(), "fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model.predict({"x": X})
    np.testing.assert_allclose(out["y"], X * X * 1e-3, rtol=1e-6)
    assert model.last_numerics is None


def test_fp32_can_check_too():
    model = ReferenceModel(PATH, _overflowing_program(), "fp32", on_nonfinite="warn")
    model.predict({"x": X})
    assert model.last_numerics is not None and model.last_numerics.ok


def test_fp16_warns_and_reports_the_first_overflowing_op():
    model = ReferenceModel(PATH, _overflowing_program(), "fp16")
    with pytest.warns(NumericsWarning, match=r"vae_decoder\.mlpackage: in fp16, op 'square_1' \(mul, #0\) output 'sq' holds 2 inf"):
        out = model.predict({"x": X})
    report = model.last_numerics
    assert not report.ok
    first = report.first
    assert (first.op_type, first.op_name, first.output, first.index) == ("mul", "square_1", "sq", 0)
    assert (first.inf_count, first.nan_count, first.size) == (2, 0, 4)
    assert report.nonfinite_ops == 3  # square_1 (inf), diff_1 (nan), rescale (inf)
    assert report.model_path == PATH
    assert out["y"].dtype == np.float16 and np.isinf(out["y"][2:]).all()
    assert np.isnan(out["d"][2:]).all()


def test_fp16_can_raise_at_the_first_overflow():
    model = ReferenceModel(PATH, _overflowing_program(), "fp16", on_nonfinite="raise")
    with pytest.raises(NumericalError, match=r"vae_decoder\.mlpackage: in fp16, op 'square_1' \(mul, #0\)"):
        model.predict({"x": X})


def test_fp16_ignore_skips_the_check():
    model = ReferenceModel(PATH, _overflowing_program(), "fp16", on_nonfinite="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict({"x": X})
    assert model.last_numerics is None


def test_small_inputs_do_not_warn_in_fp16():
    model = ReferenceModel(PATH, _overflowing_program(), "fp16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict({"x": np.array([1, 2, 3, 4], np.float32)})
    assert model.last_numerics.ok


def test_every_op_output_is_rounded_through_fp16():
    # (x * 3) then * (1/3): with per-op fp16 rounding the result differs from the fp32 one.
    ops = [
        const("three", np.float32(3.0)),
        const("third", np.float32(1.0 / 3.0)),
        op("mul", "m1", [("a", t("fp32", 64))], x="x", y="three"),
        op("mul", "m2", [("y", t("fp32", 64))], x="a", y="third"),
    ]
    prog = program([("x", t("fp32", 64))], ops, ["y"])
    x = np.random.default_rng(3).uniform(-10, 10, 64).astype(np.float32)
    h = np.float16
    expected = (h(x.astype(h).astype(np.float32) * np.float32(h(3.0))).astype(np.float32) * np.float32(h(1 / 3))).astype(h)
    got = ReferenceModel(PATH, prog, "fp16").predict({"x": x})["y"]
    np.testing.assert_array_equal(got, expected)
    exact = ReferenceModel(PATH, prog, "fp32").predict({"x": x})["y"]
    np.testing.assert_allclose(exact, x, rtol=1e-6)
    assert np.count_nonzero(exact != got.astype(np.float32)) > 32  # fp16 rounding shows


def test_bad_on_nonfinite_value():
    with pytest.raises(BenchError, match="unknown on_nonfinite 'loud'"):
        ReferenceModel(PATH, _overflowing_program(), "fp16", on_nonfinite="loud")


def test_a_converted_model_overflows_in_fp16_mode_only(tmp_path):
    """The madebyollin case in small: a VAE-like block whose activations exceed 65504 in fp16."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from bench.engines import reference

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        big = mb.mul(x=x, y=np.float32(512.0), name="scale_up")
        squared = mb.mul(x=big, y=big, name="energy")  # 512 * 512 * x^2 > 65504 for |x| >= 0.5
        return mb.sqrt(x=squared, name="norm")

    path = tmp_path / "overflow.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
               compute_precision=ct.precision.FLOAT32).save(str(path))
    x = {"x": np.array([[0.25, 0.5, 1.0, -2.0]], np.float32)}
    exact = reference.load(path, precision="fp32").predict(x)
    np.testing.assert_allclose(exact["norm"], 512 * np.abs(x["x"]), rtol=1e-6)
    model = reference.load(path, precision="fp16")
    with pytest.warns(NumericsWarning, match=r"overflow\.mlpackage: in fp16, op 'energy' \(mul"):
        half = model.predict(x)
    assert model.last_numerics.first.op_name == "energy" and model.last_numerics.first.inf_count == 3
    assert half["norm"][0, 0] == 128 and np.isinf(half["norm"][0, 1:]).all()


# -- the fast fp16 path: in-place block rounding, no rounding of value-moving ops -------------------------


def test_in_place_rounding_matches_a_float16_cast_and_finds_overflow():
    from bench.engines.reference.precision import round_fp16, round_fp16_in_place

    rng = np.random.default_rng(0)
    # several blocks and a ragged last one; magnitudes from float16's subnormals to its largest values
    values = (rng.standard_normal(600_003) * np.exp(rng.uniform(-22, 9, 600_003))).astype(np.float32)
    fp16_max_ulp, sub_ulp = 32.0, 2.0**-24
    values[:12] = [65504, -65504, 65519.99, 1 + 2**-11, 1 + 3 * 2**-11, 2**-15, 0.5 * sub_ulp, 1.5 * sub_ulp,
                   -0.0, 2**-14 - sub_ulp / 2, 1e-30, 65504 - fp16_max_ulp / 2]  # ties, subnormals, edges
    expected = round_fp16(values)
    rounded = values.copy()
    assert round_fp16_in_place(rounded, check=True) is True
    np.testing.assert_array_equal(rounded.view(np.uint32), expected.view(np.uint32))  # bit for bit, -0.0 too
    # [2^115, 2^116) once became nan (the rounding constant overflowed to inf): inf, as the cast gives
    special = np.array([np.inf, -np.inf, np.nan, 65520, -70000, 3e38, 4.2e34, -5e34, 8e34, 1.0], np.float32)
    special = np.tile(special, 300)  # past the plain cast's few values: the blocked rounding
    expected_special = round_fp16(special)
    assert round_fp16_in_place(special, check=True) is False
    np.testing.assert_array_equal(special, expected_special)  # nan == nan for assert_array_equal
    one_block = values[:100_000].copy()  # one block: rounded in the calling thread, the same bits
    assert round_fp16_in_place(one_block, check=True) is True
    np.testing.assert_array_equal(one_block.view(np.uint32), expected[:100_000].view(np.uint32))
    # a block whose only value past 2^15 is one of these: the overflow test after rounding runs
    for large, finite in ((40000.5, True), (65520.0, False), (-np.inf, False)):
        block = np.clip(values[:100_000], -30000, 30000)
        block[5000] = large
        expected_block = round_fp16(block)
        assert round_fp16_in_place(block, check=True) is finite
        np.testing.assert_array_equal(block.view(np.uint32), expected_block.view(np.uint32))
    # a block whose only value near zero is one of these: -0.0 where the cast gives it
    wide = np.where(np.abs(values[:100_000]) < 1e-3, np.float32(0.5), values[:100_000])
    for tiny in (-(2.0**-25), -(2.0**-26), -0.0, -1e-45, -(2.0**-24), -1.5 * 2.0**-24, 2.0**-25):
        block = wide.copy()
        block[777] = tiny
        expected_block = round_fp16(block)
        assert round_fp16_in_place(block, check=True) is True
        np.testing.assert_array_equal(block.view(np.uint32), expected_block.view(np.uint32))
    small = values[:2000].copy()  # few values take the plain cast: the same bits
    assert round_fp16_in_place(small, check=True) is True
    np.testing.assert_array_equal(small.view(np.uint32), expected[:2000].view(np.uint32))
    small[7] = np.inf
    assert round_fp16_in_place(small, check=True) is False and round_fp16_in_place(small, check=False) is None
    values[150_000] = 70000.0  # over float16's 65504: becomes inf
    assert round_fp16_in_place(values, check=True) is False
    assert np.isinf(values[150_000]) and round_fp16_in_place(values.copy(), check=False) is None


def _moving_program(mask_value: float):
    """reshape(x) and a slice of a constant (mask_value in it) both only move values."""
    ops = [
        op("reshape", "flat", [("r", t("fp32", 4))], x="x", shape="shape"),
        const("shape", np.array([4], np.int32)),
        const("mask", np.array([0.0, mask_value, 0.0, 0.0], np.float32)),
        op("slice_by_index", "cut", [("m", t("fp32", 2))], x="mask", begin="begin", end="end"),
        const("begin", np.array([0], np.int32)),
        const("end", np.array([2], np.int32)),
    ]
    ops = [o for o in ops if o.type == "const"] + [o for o in ops if o.type != "const"]
    return program([("x", t("fp32", 2, 2))], ops, ["r", "m"])


def test_fp16_value_moving_ops_still_report_inputs_and_constants_that_are_not_finite():
    finite = ReferenceModel(PATH, _moving_program(-1.0), "fp16")
    out = finite.predict({"x": np.array([[1.0, 2.0], [3.0, 1.0 / 3.0]], np.float32)})
    assert finite.last_numerics.ok
    assert out["r"][3] == np.float16(1.0 / 3.0)  # the input was rounded on the way in
    # a -3.4e38 mask constant turns into -inf in fp16: the slice of it is reported
    masked = ReferenceModel(PATH, _moving_program(-3.4e38), "fp16")
    with pytest.warns(NumericsWarning, match=r"op 'cut' \(slice_by_index"):
        masked.predict({"x": np.ones((2, 2), np.float32)})
    # an input holding inf: the reshape that passes it on is the op reported, as before
    with pytest.warns(NumericsWarning, match=r"op 'flat' \(reshape"):
        finite.predict({"x": np.array([[1.0, np.inf], [0.0, 0.0]], np.float32)})
    assert finite.last_numerics.nonfinite_ops == 1


def test_rounding_of_a_nonnegative_op_output_matches_the_cast():
    """The sign passes are skipped for ops whose outputs are never negative (squares,
    probabilities): zeros, subnormals and values rounding to zero keep the cast's +0.0."""
    from bench.engines.reference.precision import round_fp16, round_fp16_in_place

    rng = np.random.default_rng(5)
    values = np.abs(rng.standard_normal(300_000) * np.exp(rng.uniform(-25, 9, 300_000))).astype(np.float32)
    values[:6] = [0.0, 2.0**-25, 2.0**-26, 1e-45, 70000.0, np.inf]
    expected = round_fp16(values)
    assert round_fp16_in_place(values, check=True, nonnegative=True) is False  # 70000 and inf
    np.testing.assert_array_equal(values.view(np.uint32), expected.view(np.uint32))
