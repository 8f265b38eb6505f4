"""The model.mil parser on hand-written snippets in the grammar of real compiled files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.engines.reference.graph import Ref, TensorType, Value
from bench.engines.reference.mil_text import parse_program, tokenize
from bench.engines.reference.mlmodelc import read_mlmodelc
from bench.engines.reference.weights import WeightWriter
from bench.errors import ModelFormatError

OLD_FORM = """program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-component-MIL", "3402.3.1"}, {"coremlc-version", "3402.4.1"}})]
{
    func main<ios16>(tensor<fp16, [1, 4, 2, 2]> x) {
        tensor<string, []> pt = const()[name = tensor<string, []>("pt"), val = tensor<string, []>("valid")];
        tensor<int32, []> ax = const()[name = tensor<string, []>("ax"), val = tensor<int32, []>(1)];
        tensor<fp16, []> s = const()[name = tensor<string, []>("s"), val = tensor<fp16, []>(-0x1.388p+13)];
        tensor<bool, [2]> flags = const()[name = tensor<string, []>("flags"), val = tensor<bool, [2]>([true, false])];
        tensor<fp32, [2, 2]> m = const()[name = tensor<string, []>("m"), val = tensor<fp32, [2, 2]>([[0x1p+0, -0x1.8p-1], [inf, -inf]])];
        tensor<fp16, [1, 4, 2, 2]> y = mul(x = x, y = s)[name = tensor<string, []>("y_op")];
    } -> (y);
}
"""

NEW_FORM = """program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3500.14.1"}, {"coremlc-version", "3500.32.1"}})]
{
    func main<ios18>(tensor<fp16, [1, 4, 2, 2]> x, tensor<int32, [1, 3]> ids) {
        string pt = const()[name = string("pt"), val = string("valid")];
        int32 ax = const()[name = string("ax"), val = int32(1)];
        int32 n = const()[name = string("n"), val = int32(2)];
        fp16 s = const()[name = string("s"), val = fp16(0x1.8p+1)];
        (tensor<fp16, [1, 2, 2, 2]> a, tensor<fp16, [1, 2, 2, 2]> b) = split(axis = ax, num_splits = n, x = x)[name = string("split_0")];
        bool inter = const()[name = string("inter"), val = bool(false)];
        tensor<fp16, [1, 4, 2, 2]> c = concat(axis = ax, interleave = inter, values = (b, a))[name = string("concat_0")];
        tensor<fp16, [1, 4, 2, 2]> d = mul(x = c, y = fp16(-0x1p-2))[name = string("scale")];
    } -> (d, c);
}
"""


def test_old_form_program_1_0():
    program = parse_program(OLD_FORM, "old.mil")
    assert program.version == "1.0"
    assert program.attributes["buildInfo"] == {"coremlc-component-MIL": "3402.3.1", "coremlc-version": "3402.4.1"}
    main = program.main
    assert main.opset == "ios16"
    assert main.inputs == (Value("x", TensorType("fp16", (1, 4, 2, 2))),)
    ops = {op.name: op for op in main.operations}
    assert ops["pt"].attributes["val"] == "valid"
    assert ops["ax"].attributes["val"].dtype == np.int32 and ops["ax"].attributes["val"] == 1
    s = ops["s"].attributes["val"]
    assert s.dtype == np.float16 and float(s) == float.fromhex("-0x1.388p+13") == -10000.0
    assert ops["flags"].attributes["val"].tolist() == [True, False]
    m = ops["m"].attributes["val"]
    assert m.dtype == np.float32 and m[0].tolist() == [1.0, -0.75] and m[1].tolist() == [math.inf, -math.inf]
    assert ops["y_op"].type == "mul" and ops["y_op"].inputs == {"x": Ref("x"), "y": Ref("s")}
    assert main.outputs == ("y",)


def test_new_form_program_1_3_multi_output_variadic_and_inline_literal():
    program = parse_program(NEW_FORM, "new.mil")
    main = program.main
    assert program.version == "1.3" and main.opset == "ios18"
    ops = {op.name: op for op in main.operations}
    split = ops["split_0"]
    assert [v.name for v in split.outputs] == ["a", "b"]
    assert split.outputs[0].type == TensorType("fp16", (1, 2, 2, 2))
    assert ops["concat_0"].inputs["values"] == (Ref("b"), Ref("a"))
    literal = ops["scale"].inputs["y"]
    assert isinstance(literal, np.ndarray) and literal.dtype == np.float16 and float(literal) == -0.25
    assert ops["s"].attributes["val"] == np.float16(3.0)
    assert ops["inter"].attributes["val"].dtype == np.bool_
    assert main.outputs == ("d", "c")


def test_blobfile_constants_read_from_the_weight_file(tmp_path):
    weight = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    indices = np.arange(16, dtype=np.uint8) % 16
    writer = WeightWriter()
    w_offset = writer.add(weight, "fp16")
    i_offset = writer.add(indices, "uint4")
    writer.write(tmp_path / "weights" / "weight.bin")
    (tmp_path / "model.mil").write_text(
        "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [2, 3, 4]> x) {\n"
        f'        tensor<fp16, [2, 3, 4]> w = const()[name = string("w"), val = tensor<fp16, [2, 3, 4]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64({w_offset})))];\n'
        "        tensor<fp16, [16]> lutd = constexpr_lut_to_dense(indices = tensor<uint4, [16]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), "
        f"offset = uint64({i_offset}))), lut = tensor<fp16, [1, 16, 1]>([{', '.join(f'{v:.1f}' for v in range(16))}]))[name = string(\"lut\")];\n"
        '        tensor<fp16, [2, 3, 4]> y = add(x = x, y = w)[name = string("y")];\n'
        "    } -> (y);\n}\n"
    )
    program = read_mlmodelc(tmp_path)
    ops = {op.name: op for op in program.main.operations}
    np.testing.assert_array_equal(ops["w"].attributes["val"], weight)
    lut = ops["lut"]
    np.testing.assert_array_equal(lut.inputs["indices"], indices)
    assert lut.literal_dtypes == {"indices": "uint4"}
    assert lut.inputs["lut"].shape == (1, 16, 1) and lut.inputs["lut"].dtype == np.float16


def test_ios16_constexpr_parameters_in_the_attribute_bracket(tmp_path):
    writer = WeightWriter()
    offset = writer.add(np.arange(12, dtype=np.int8).reshape(3, 4), "int8")
    writer.write(tmp_path / "weights" / "weight.bin")
    (tmp_path / "model.mil").write_text(
        "program(1.0)\n{\n    func main<ios16>(tensor<fp16, [3, 4]> x) {\n"
        "        tensor<fp16, [3, 4]> w = constexpr_affine_dequantize()[axis = tensor<int32, []>(0), name = tensor<string, []>(\"w\"), "
        f"quantized_data = tensor<int8, [3, 4]>(BLOBFILE(path = tensor<string, []>(\"@model_path/weights/weight.bin\"), offset = tensor<uint64, []>({offset}))), "
        "scale = tensor<fp16, [3]>([0x1p-1, 0x1p-2, 0x1p-3]), zero_point = tensor<int8, []>(0)];\n"
        '        tensor<fp16, [3, 4]> y = add(x = x, y = w)[name = tensor<string, []>("y")];\n'
        "    } -> (y);\n}\n"
    )
    op = read_mlmodelc(tmp_path).main.operations[0]
    assert op.type == "constexpr_affine_dequantize" and op.name == "w" and op.inputs == {}
    assert sorted(op.attributes) == ["axis", "quantized_data", "scale", "zero_point"]
    np.testing.assert_array_equal(op.attributes["quantized_data"], np.arange(12).reshape(3, 4))


def test_flexible_dims_function_attributes_and_comments():
    text = """program(1.0)
{
    // a comment line
    func main<ios17>(tensor<int32, [1, ?]> input_ids) [FlexibleShapeInformation = tuple<tuple<tensor<string, []>, dict<tensor<string, []>, tensor<int32, [?]>>>>((("DefaultShapes", {{"input_ids", [1, 77]}}),))] {
        tensor<int32, [1, ?]> y = identity(x = input_ids)[name = tensor<string, []>("y")]; // trailing comment
    } -> (y);
}
"""
    main = parse_program(text).main
    assert main.inputs[0].type == TensorType("int32", (1, None))
    assert "FlexibleShapeInformation" in main.attributes
    assert main.operations[0].outputs[0].type.shape == (1, None)


def test_unnamed_ops_take_their_output_name():
    text = "program(1.3)\n{\n func main<ios18>(tensor<fp32, [2]> x) {\n  tensor<fp32, [2]> y = relu(x = x);\n } -> (y);\n}\n"
    assert parse_program(text).main.operations[0].name == "y"


def test_tokenizer_reads_hex_floats_and_signed_words():
    texts = [t.text for t in tokenize("a = fp32(-0x1.388p+13), b = [inf, -inf, nan, 1e-3, -7, 0x1p-24]")]
    for expected in ["-0x1.388p+13", "inf", "-inf", "nan", "1e-3", "-7", "0x1p-24"]:
        assert expected in texts


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda t: t.replace('[name = string("scale")];', '[name = string("scale")]'), 12, "expected ';' at the end of the op"),
        (lambda t: t.replace("fp16 s =", "fp17 s ="), 8, "unknown type 'fp17'"),
        (lambda t: t.replace("values = (b, a)", "values = (b, q)"), 11, "'q' is used before it is defined"),
        (lambda t: t.replace("int32(1)", "int32(1}"), 6, "expected '\\)' closing the literal"),
        (lambda t: t.replace("-> (d, c)", "-> (d, zz)"), 13, "function output 'zz' is never defined"),
        (lambda t: t.replace("split(axis", "split(axis $"), 9, "unexpected character '\\$'"),
        (lambda t: t.replace("program(1.3)", "programme(1.3)"), 1, "expected 'program\\(version\\)'"),
        (lambda t: t.rstrip().rstrip("}"), 13, "expected 'func' or '}', found end of file"),
    ],
)
def test_malformed_lines_name_file_and_line(mutate, line, message):
    with pytest.raises(ModelFormatError, match=rf"bad\.mil:{line}: .*{message}"):
        parse_program(mutate(NEW_FORM), "bad.mil")


def test_blobfile_errors_name_the_mil_line_and_the_weight_file(tmp_path):
    (tmp_path / "model.mil").write_text(
        "program(1.3)\n{\n func main<ios18>(tensor<fp16, [4]> x) {\n"
        '  tensor<fp16, [4]> w = const()[name = string("w"), val = tensor<fp16, [4]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];\n'
        '  tensor<fp16, [4]> y = add(x = x, y = w)[name = string("y")];\n } -> (y);\n}\n'
    )
    with pytest.raises(ModelFormatError, match=r"model\.mil:4: .*weights/weight\.bin: weight file is missing"):
        read_mlmodelc(tmp_path)


def test_missing_model_mil(tmp_path):
    with pytest.raises(ModelFormatError, match="model.mil is missing"):
        read_mlmodelc(tmp_path)
