"""Quantization variants carry the compressed-weight forms coremltools.optimize produces."""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest

from bench.models.metadata import infer_quantization, read_model_info
from bench.models.quantize import kmeans_lut
from bench.models.recipe import load_recipe


def _spec(path):
    return ct.utils.load_spec(str(path))


def _constexpr(spec, op_type):
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    return [op for op in block.operations if op.type == op_type]


def test_fp16_weights_are_fp16(model_set):
    info = read_model_info(model_set("tiny-split-einsum-fp16").files["unet"])
    assert infer_quantization(info.__class__(**{**info.__dict__, "user_metadata": {}})) == "float16"


def test_int8_is_ios16_affine_dequantize(model_set):
    spec = _spec(model_set("tiny-split-einsum-int8").files["unet"])
    ops = _constexpr(spec, "constexpr_affine_dequantize")
    assert spec.specificationVersion == 7 and len(ops) > 100
    assert ops[0].attributes["quantized_data"].type.tensorType.dataType == ct.proto.MIL_pb2.INT8
    assert not _constexpr(spec, "constexpr_lut_to_dense")


def test_pal6_is_ios16_lut_form(model_set):
    spec = _spec(model_set("tiny-split-einsum-pal6").files["unet"])
    ops = _constexpr(spec, "constexpr_lut_to_dense")
    assert spec.specificationVersion == 7 and len(ops) > 100
    # iOS16 form: flat 64-entry LUT and packed uint8 indices as attributes
    assert [d.constant.size for d in ops[0].attributes["lut"].type.tensorType.dimensions] == [64]
    assert ops[0].attributes["indices"].type.tensorType.dataType == ct.proto.MIL_pb2.UINT8


def test_pal4_is_ios18_grouped_lut_form(model_set):
    spec = _spec(model_set("tiny-split-einsum-pal4").files["unet"])
    ops = _constexpr(spec, "constexpr_lut_to_dense")
    assert spec.specificationVersion == 9 and len(ops) > 100
    assert "indices" in ops[0].inputs and "lut" in ops[0].inputs  # iOS18 form: inputs, not attributes
    info = read_model_info(model_set("tiny-split-einsum-pal4").files["unet"])
    assert {bits for bits, _ in info.lut_bits} == {4}


def test_mbp_follows_its_recipe(model_set):
    ms = model_set("tiny-split-einsum-mbp")
    recipe_file = next((ms.files["unet"].resolve().parent).glob("*_palettization_recipe.json"))
    recipe = load_recipe(recipe_file)
    info = read_model_info(ms.files["unet"])
    compressed_bits = sorted({bits for bits, _ in info.lut_bits})
    expected_bits = sorted({b for b in recipe.layers.values() if b != 16})
    assert compressed_bits == expected_bits and len(compressed_bits) > 1
    assert ms.quantization == f"mbp-{recipe.stated_bits:.2f}"
    # the label is the recipe's size-weighted mean bit width, as in Apple's recipe names
    total = sum(n for _, n in info.lut_bits)
    assert abs(sum(b * n for b, n in info.lut_bits) / total - recipe.stated_bits) < 0.01


def test_labels_are_inferred_from_weights_without_metadata(model_set):
    for variant, label in (("tiny-split-einsum-int8", "int8"), ("tiny-split-einsum-pal6", "palettized-6bit"),
                           ("tiny-split-einsum-pal4", "palettized-4bit"), ("tiny-split-einsum-fp32", "float32")):
        info = read_model_info(model_set(variant).files["unet"])
        info.user_metadata.clear()
        assert infer_quantization(info) == label
    info = read_model_info(model_set("tiny-split-einsum-mbp").files["unet"])
    info.user_metadata.clear()
    assert infer_quantization(info).startswith("mbp-")


@pytest.mark.parametrize("nbits", [2, 4, 6])
def test_kmeans_lut_is_deterministic_and_beats_uniform(nbits):
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((32, 16, 3, 3)).astype(np.float16)
    lut, idx = kmeans_lut(nbits)(weight)
    lut2, idx2 = kmeans_lut(nbits)(weight)
    assert lut.shape == (2**nbits,) and idx.dtype == np.uint8 and idx.max() < 2**nbits
    assert np.array_equal(lut, lut2) and np.array_equal(idx, idx2)
    error = np.abs(lut[idx].astype(np.float32) - weight.reshape(-1)).mean()
    grid = np.linspace(weight.min(), weight.max(), 2**nbits, dtype=np.float32)
    uniform = np.abs(grid[np.abs(weight.reshape(-1, 1) - grid).argmin(1)] - weight.reshape(-1)).mean()
    assert error < uniform


def test_kmeans_lut_keeps_few_unique_values_exact():
    weight = np.array([0.5, -1.0, 0.5, 2.0] * 8, dtype=np.float32)
    lut, idx = kmeans_lut(4)(weight)
    assert np.array_equal(lut[idx], weight)
