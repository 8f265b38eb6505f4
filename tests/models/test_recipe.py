"""Mixed-bit recipes: Apple's pre-analysis format, validation, layer mapping, clear errors."""

from __future__ import annotations

import json

import pytest

from bench.errors import RecipeError
from bench.models.recipe import (
    Recipe,
    const_names_for,
    load_recipe,
    recipe_from_json,
    tiny_recipe_bits,
)

APPLE_LIKE = {
    "model_version": "stabilityai/stable-diffusion-xl-base-1.0",
    "baselines": {"original": 60.0, "recipe_3.00_bit_mixedpalette": 30.1},
    "recipes": {
        "recipe_3.00_bit_mixedpalette": {"conv_in": 8, "down_blocks.1.attentions.0.proj_in": 2, "up_blocks.0.resnets.0.conv1": 16},
    },
}


def test_reads_apple_pre_analysis_layout(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(APPLE_LIKE))
    recipe = load_recipe(path)
    assert recipe.name == "recipe_3.00_bit_mixedpalette" and recipe.stated_bits == 3.0
    assert recipe.layers["down_blocks.1.attentions.0.proj_in"] == 2
    sizes = {"conv_in": 100, "down_blocks.1.attentions.0.proj_in": 300, "up_blocks.0.resnets.0.conv1": 100}
    assert recipe.mean_bits(sizes) == pytest.approx((8 * 100 + 2 * 300 + 16 * 100) / 500)


def test_maps_module_names_to_weight_consts():
    recipe = Recipe("r", {"conv_in": 8, "down_blocks.1.attentions.0.proj_in": 4})
    consts = {"conv_in_weight_to_fp16", "down_blocks_1_attentions_0_proj_in_weight_to_fp16", "conv_out_weight_to_fp16"}
    assert const_names_for(recipe, consts, model="m") == {
        "conv_in_weight_to_fp16": 8,
        "down_blocks_1_attentions_0_proj_in_weight_to_fp16": 4,
    }


def test_unknown_layers_are_named_with_the_model():
    recipe = Recipe("recipe_4.50_bit_mixedpalette", {"conv_in": 8, "mid_block.attentions.0.proj_in": 4, "nope.layer": 2},
                    source="/x/r.json")
    with pytest.raises(RecipeError) as error:
        const_names_for(recipe, {"conv_in_weight_to_fp16"}, model="the tiny unet")
    message = str(error.value)
    assert "mid_block.attentions.0.proj_in" in message and "nope.layer" in message
    assert "the tiny unet" in message and "/x/r.json" in message and "recipe_4.50_bit_mixedpalette" in message


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"recipes": {"a": {"conv_in": 8}, "b": {"conv_in": 4}}}, "choose one of: a, b"),
        ({"recipes": {"a": {"conv_in": 5}}}, "layer 'conv_in' has bits 5"),
        ({"recipes": {"a": {}}}, "empty"),
        ([1, 2], "neither"),
    ],
)
def test_malformed_recipes(payload, fragment):
    with pytest.raises(RecipeError, match=fragment.replace("(", r"\(")):
        recipe_from_json(payload, source="f.json")


def test_bad_json_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(RecipeError, match="broken.json"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="no recipe 'x'"):
        (tmp_path / "ok.json").write_text(json.dumps(APPLE_LIKE))
        load_recipe(tmp_path / "ok.json", key="x")


def test_tiny_rule_spans_several_bit_widths():
    assert tiny_recipe_bits("conv_in") == 8
    assert tiny_recipe_bits("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q") == 2
    assert tiny_recipe_bits("down_blocks.1.attentions.0.transformer_blocks.0.ff.net.2") == 4
    assert tiny_recipe_bits("down_blocks.1.attentions.0.proj_in") == 6


def test_applying_a_recipe_with_missing_layers_fails_before_building(tmp_path):
    """A recipe naming a layer the generated UNet lacks stops the build with the layer's name."""
    import coremltools as ct

    from bench.models.quantize import compress_program
    from bench.models.tiny.layers import Ctx
    from bench.models.tiny.parts import weight_consts
    from bench.models.tiny.spec import SIZES
    from bench.models.tiny.unet import unet_program
    from bench.models.tiny.weights import ParamSource

    tiny = SIZES["tiny"]
    prog = unet_program(Ctx(ParamSource(0), fp16=True), tiny.unet, tiny.latent_size, "ORIGINAL", ct.target.iOS16)
    recipe = Recipe("recipe_5.00_bit_mixedpalette", {"conv_in": 6, "down_blocks.7.attentions.0.proj_in": 4})
    with pytest.raises(RecipeError, match=r"down_blocks\.7\.attentions\.0\.proj_in"):
        const_names_for(recipe, set(weight_consts(prog)), model="tiny unet")
    ok = const_names_for(Recipe("r", {"conv_in": 6}), set(weight_consts(prog)), model="tiny unet")
    compress_program(prog, "mbp", 256, ok)
    assert [op.op_type for op in prog.functions["main"].operations if op.op_type.startswith("constexpr")] == ["constexpr_lut_to_dense"]
