"""The generated packages have Apple's SDXL I/O contract and the op patterns real conversions emit
(their I/O names and the op patterns real conversions emit)."""

from __future__ import annotations

import coremltools as ct
import pytest

from bench.models.metadata import read_model_info
from bench.models.tiny.spec import SIZES

TINY = SIZES["tiny"]
FP32, FP16 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32, ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16

# The op patterns of Apple's SDXL conversions, plus what coremltools 9 fuses GroupNorm's / LayerNormANE's trained
# (non-identity) affine parameters into: batch_norm, and layer_norm with gamma.
UNET_OPS = {
    "const", "slice_by_index", "conv", "einsum", "mul", "add", "softmax", "reshape", "reduce_mean", "layer_norm",
    "concat", "sub", "square", "sqrt", "real_div", "transpose", "silu", "split", "gelu", "expand_dims", "sin", "cos",
    "upsample_nearest_neighbor", "cast", "batch_norm", "matmul",
}
TEXT_OPS = {
    "const", "linear", "reshape", "transpose", "add", "mul", "layer_norm", "matmul", "cast", "softmax", "sigmoid", "gelu",
    "gather", "equal", "reduce_argmax", "stack", "gather_nd",
}
VAE_OPS = {
    "const", "reshape", "reduce_mean", "add", "conv", "sub", "square", "sqrt", "real_div", "silu", "transpose", "linear",
    "upsample_nearest_neighbor", "matmul", "mul", "softmax", "batch_norm", "cast", "pad",
}


def _io(path):
    spec = ct.utils.load_spec(str(path))
    inputs = {f.name: (tuple(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in spec.description.input}
    outputs = {f.name: (tuple(f.type.multiArrayType.shape), f.type.multiArrayType.dataType) for f in spec.description.output}
    return inputs, outputs


def test_text_encoders_io(model_set):
    for variant, dtype in (("tiny-original-fp32", FP32), ("tiny-split-einsum-fp16", FP16)):
        files = model_set(variant).files
        inputs, outputs = _io(files["text_encoder"])
        assert inputs == {"input_ids": ((1, 77), FP32)}
        assert outputs == {"hidden_embeds": ((1, 77, 32), FP32), "pooled_outputs": ((1, 32), FP32)}
        inputs, outputs = _io(files["text_encoder_2"])
        assert inputs == {"input_ids": ((1, 77), FP32)}
        assert outputs == {"hidden_embeds": ((1, 77, 64), FP32), "pooled_outputs": ((1, 64), FP32)}
        assert read_model_info(files["text_encoder_2"]).op_histogram["gelu"] == 2
        del dtype


def test_unet_refiner_and_vae_io(model_set):
    for variant, dtype in (("tiny-original-fp32", FP32), ("tiny-split-einsum-fp16", FP16)):
        files = model_set(variant).files
        inputs, outputs = _io(files["unet"])
        assert inputs == {
            "sample": ((2, 4, 64, 64), dtype),
            "timestep": ((2,), dtype),
            "encoder_hidden_states": ((2, 96, 1, 77), dtype),
            "time_ids": ((2, 6), dtype),
            "text_embeds": ((2, 64), dtype),
        }
        assert outputs == {"noise_pred": ((2, 4, 64, 64), FP32)}
        inputs, outputs = _io(files["refiner"])
        assert inputs["encoder_hidden_states"] == ((2, 64, 1, 77), dtype)
        assert inputs["time_ids"] == ((2, 5), dtype)
        assert outputs == {"noise_pred": ((2, 4, 64, 64), FP32)}
        assert _io(files["vae_decoder"]) == ({"z": ((1, 4, 64, 64), dtype)}, {"image": ((1, 3, 512, 512), FP32)})
        # Apple converts SDXL's VAE encoder at float32 in every set
        assert _io(files["vae_encoder"]) == ({"x": ((1, 3, 512, 512), FP32)}, {"latent": ((1, 8, 64, 64), FP32)})


@pytest.mark.parametrize("variant", ["tiny-original-fp32", "tiny-split-einsum-fp32", "tiny-split-einsum-v2-fp32"])
def test_unet_ops_follow_real_conversions(model_set, variant):
    info = read_model_info(model_set(variant).files["unet"])
    ops = set(info.op_histogram)
    assert ops <= UNET_OPS, ops - UNET_OPS
    assert "instance_norm" not in ops and {"reduce_mean", "sub", "square", "sqrt", "real_div"} <= ops
    assert {"sin", "cos", "upsample_nearest_neighbor", "silu", "gelu", "split", "layer_norm"} <= ops
    if variant == "tiny-original-fp32":
        assert "einsum" not in ops and info.op_histogram["matmul"] > 0
    else:
        assert "matmul" not in ops and info.op_histogram["einsum"] > 0


def test_split_einsum_v2_chunks_long_queries(model_set):
    v1 = read_model_info(model_set("tiny-split-einsum-fp32").files["unet"]).op_histogram
    v2 = read_model_info(model_set("tiny-split-einsum-v2-fp32").files["unet"]).op_histogram
    # 32x32 = 1024 queries at level 1 are cut in two chunks of 512: more einsums and slices
    assert v2["einsum"] > v1["einsum"] and v2["slice_by_index"] > v1["slice_by_index"]


def test_unet_layer_norm_is_on_axis_1(model_set):
    spec = ct.utils.load_spec(str(model_set("tiny-split-einsum-fp32").files["unet"]))
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    axes = set()
    for op in block.operations:
        if op.type == "layer_norm":
            arg = op.inputs["axes"].arguments[0]
            value = consts[arg.name].attributes["val"] if arg.name else arg.value
            axes.add(tuple(value.immediateValue.tensor.ints.values))
    assert axes == {(1,)}


def test_text_and_vae_ops_follow_real_conversions(model_set):
    files = model_set("tiny-split-einsum-fp16").files
    for stage in ("text_encoder", "text_encoder_2"):
        assert set(read_model_info(files[stage]).op_histogram) <= TEXT_OPS
    assert "sigmoid" in read_model_info(files["text_encoder"]).op_histogram  # quick-gelu
    assert "equal" in read_model_info(files["text_encoder_2"]).op_histogram  # eos by id equality
    for stage in ("vae_decoder", "vae_encoder"):
        assert set(read_model_info(files[stage]).op_histogram) <= VAE_OPS


def test_packages_carry_labels_in_metadata(model_set):
    unet = read_model_info(model_set("tiny-split-einsum-mbp").files["unet"])
    assert unet.user_metadata["bench.attention"] == "SPLIT_EINSUM"
    assert unet.user_metadata["bench.quantization"] == model_set("tiny-split-einsum-mbp").quantization
    assert "com.github.apple.coremltools.conversion_date" not in unet.user_metadata


@pytest.mark.slow
@pytest.mark.parametrize("part", ["text_encoder", "text_encoder_2", "vae_decoder", "vae_encoder", "unet"])
def test_direct_emission_matches_coremltools_default_pipeline(part):
    """The generator writes the post-pipeline op forms directly; converting the torch-frontend form
    through coremltools' default pass pipeline must give the same op histogram."""
    from collections import Counter

    from bench.models.tiny.layers import Ctx
    from bench.models.tiny.text_encoder import text_encoder_program
    from bench.models.tiny.unet import unet_program
    from bench.models.tiny.vae import vae_decoder_program, vae_encoder_program
    from bench.models.tiny.weights import ParamSource

    def make(ctx):
        if part.startswith("text_encoder"):
            spec = TINY.text_encoder if part == "text_encoder" else TINY.text_encoder_2
            return text_encoder_program(ctx, spec, 994, 993, ct.target.iOS16)
        if part == "vae_decoder":
            return vae_decoder_program(ctx, TINY.vae, TINY.latent_size, ct.target.iOS16)
        if part == "vae_encoder":
            return vae_encoder_program(ctx, TINY.vae, TINY.latent_size, ct.target.iOS16)
        return unet_program(ctx, TINY.unet, TINY.latent_size, "SPLIT_EINSUM_V2", ct.target.iOS16)

    params = ParamSource(0)
    converted = ct.convert(make(Ctx(params, lowered=True)), convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                           compute_precision=ct.precision.FLOAT32, skip_model_load=True)
    direct = make(Ctx(params))

    def histogram_of_spec(spec):
        block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
        return Counter(op.type for op in block.operations if op.type != "const")

    theirs = histogram_of_spec(converted.get_spec())
    ours = Counter(op.op_type for op in direct.functions["main"].operations if op.op_type != "const")
    assert ours == theirs
