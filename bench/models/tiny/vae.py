"""Tiny SDXL VAE decoder and encoder (diffusers `AutoencoderKL`, converted the way Apple wraps it).

- decoder: input `z` (1, 4, h, w) (latents already divided by the scaling factor), `post_quant_conv`
  then the decoder; output `image` (1, 3, 8h, 8w), nominally in [-1, 1] (not clamped).
- encoder: input `x` (1, 3, 8h, 8w) in [-1, 1], the encoder then `quant_conv`; output `latent`
  (1, 8, h, w): the Gaussian moments (mean in channels 0-3, log-variance in 4-7).

Stock diffusers layers (not Apple's rewrite): GroupNorm lowered, the mid-block attention on (B, S, C)
with `linear` projections, nearest upsampling, asymmetric (0, 1, 0, 1) padding before the encoder's
stride-2 convolutions.
"""

from __future__ import annotations

from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from bench.models.tiny import layers
from bench.models.tiny.layers import Ctx
from bench.models.tiny.spec import LATENT_CHANNELS, VAESpec


def _resnet(p: Ctx, x, path: str, cin: int, cout: int, groups: int):
    h = mb.silu(x=layers.group_norm(p, x, f"{path}.norm1", cin, groups, 1e-6))
    h = layers.conv2d(p, h, f"{path}.conv1", cin, cout, 3)
    h = mb.silu(x=layers.group_norm(p, h, f"{path}.norm2", cout, groups, 1e-6))
    h = layers.conv2d(p, h, f"{path}.conv2", cout, cout, 3)
    if cin != cout:
        x = layers.conv2d(p, x, f"{path}.conv_shortcut", cin, cout)
    return mb.add(x=x, y=h)


def _attention(p: Ctx, x, path: str, channels: int, groups: int):
    """diffusers `Attention` (one head, group norm, residual) on a (B, C, H, W) feature map."""
    batch, _, height, width = (int(d) for d in x.shape)
    h = layers.group_norm(p, x, f"{path}.group_norm", channels, groups, 1e-6, shape=[batch, channels, height * width])
    h = mb.transpose(x=h, perm=[0, 2, 1])
    q = layers.linear(p, h, f"{path}.to_q", channels, channels)
    k = layers.linear(p, h, f"{path}.to_k", channels, channels)
    v = layers.linear(p, h, f"{path}.to_v", channels, channels)
    a = layers.multi_head_attention_bsc(p, q, k, v, heads=1)
    a = layers.linear(p, a, f"{path}.to_out.0", channels, channels)
    a = mb.reshape(x=mb.transpose(x=a, perm=[0, 2, 1]), shape=[batch, channels, height, width])
    return mb.add(x=a, y=x)


def _mid_block(p: Ctx, h, path: str, ch: int, groups: int):
    h = _resnet(p, h, f"{path}.resnets.0", ch, ch, groups)
    h = _attention(p, h, f"{path}.attentions.0", ch, groups)
    return _resnet(p, h, f"{path}.resnets.1", ch, ch, groups)


def vae_decoder_program(params: Ctx, spec: VAESpec, latent_size: int, opset):
    """MIL program of the VAE decoder for (1, 4, latent, latent) inputs (fp16 `z` in fp16 programs)."""
    g = spec.norm_groups
    dtype = types.fp16 if params.fp16 else types.fp32
    layers.fresh_names()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, LATENT_CHANNELS, latent_size, latent_size), dtype=dtype)],
                opset_version=opset)
    def prog(z):
        h = layers.conv2d(params, z, "post_quant_conv", LATENT_CHANNELS, LATENT_CHANNELS)
        channels = list(reversed(spec.block_out_channels))
        ch = channels[0]
        h = layers.conv2d(params, h, "decoder.conv_in", LATENT_CHANNELS, ch, 3)
        h = _mid_block(params, h, "decoder.mid_block", ch, g)
        for i, cout in enumerate(channels):
            for j in range(spec.layers_per_block + 1):
                h = _resnet(params, h, f"decoder.up_blocks.{i}.resnets.{j}", ch, cout, g)
                ch = cout
            if i < len(channels) - 1:
                h = mb.upsample_nearest_neighbor(x=h, scale_factor_height=2.0, scale_factor_width=2.0)
                h = layers.conv2d(params, h, f"decoder.up_blocks.{i}.upsamplers.0.conv", ch, ch, 3)
        h = mb.silu(x=layers.group_norm(params, h, "decoder.conv_norm_out", ch, g, 1e-6))
        out = layers.conv2d(params, h, "decoder.conv_out", ch, 3, 3, gain=0.5, name=layers.output_name(params, "image"))
        return layers.float_output(params, out, "image")

    return prog


def vae_encoder_program(params: Ctx, spec: VAESpec, latent_size: int, opset):
    """MIL program of the VAE encoder for (1, 3, 8 * latent, 8 * latent) images."""
    g = spec.norm_groups
    side = latent_size * 8
    dtype = types.fp16 if params.fp16 else types.fp32
    layers.fresh_names()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, side, side), dtype=dtype)], opset_version=opset)
    def prog(x):
        ch = spec.block_out_channels[0]
        h = layers.conv2d(params, x, "encoder.conv_in", 3, ch, 3)
        for i, cout in enumerate(spec.block_out_channels):
            for j in range(spec.layers_per_block):
                h = _resnet(params, h, f"encoder.down_blocks.{i}.resnets.{j}", ch, cout, g)
                ch = cout
            if i < len(spec.block_out_channels) - 1:
                h = mb.pad(x=h, pad=[0, 0, 0, 0, 0, 1, 0, 1], mode="constant", constant_val=params.scalar(0.0))
                h = layers.conv2d(params, h, f"encoder.down_blocks.{i}.downsamplers.0.conv", ch, ch, 3, stride=2, padding=0)
        h = _mid_block(params, h, "encoder.mid_block", ch, g)
        h = mb.silu(x=layers.group_norm(params, h, "encoder.conv_norm_out", ch, g, 1e-6))
        h = layers.conv2d(params, h, "encoder.conv_out", ch, 2 * LATENT_CHANNELS, 3)
        out = layers.conv2d(params, h, "quant_conv", 2 * LATENT_CHANNELS, 2 * LATENT_CHANNELS, name=layers.output_name(params, "latent"))
        return layers.float_output(params, out, "latent")

    return prog
