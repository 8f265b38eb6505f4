"""The configurations the parity tests cover.

Spread over head counts, layers per block, transformer depth, cross-attention widths, activation
functions and deployment targets (macOS13 = the iOS16 opset, iOS17, iOS18 whose conversions emit
`scaled_dot_product_attention`), so that one lucky shape cannot hide a kernel bug.
"""

from __future__ import annotations

import pytest
from torch_oracles import TextEncoderConfig, UNetConfig, VAEDecoderConfig

UNET_CONFIGS: tuple[UNetConfig, ...] = (
    UNetConfig(
        "unet-2lvl-h2-x32",
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=2,
        transformer_layers_per_block=1,
        cross_attention_dim=32,
        target="macOS13",
        seed=11,
    ),
    UNetConfig(
        "unet-lpb2-h8-x48",
        block_out_channels=(32, 64),
        layers_per_block=2,
        attention_head_dim=8,
        transformer_layers_per_block=(1, 2),
        cross_attention_dim=48,
        norm_num_groups=16,
        text_embeds_dim=40,
        target="iOS17",
        seed=12,
    ),
    UNetConfig(
        "unet-sdpa-h4-x64",
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=4,
        transformer_layers_per_block=2,
        cross_attention_dim=64,
        use_linear_projection=False,
        addition_time_embed_dim=16,
        latent=16,
        target="iOS18",
        seed=13,
    ),
)

TEXT_ENCODER_CONFIGS: tuple[TextEncoderConfig, ...] = (
    TextEncoderConfig("te1-quickgelu-h4", hidden_size=32, num_attention_heads=4, num_hidden_layers=2, target="iOS16", seed=21),
    TextEncoderConfig(
        "te1-sdpa-h2-l3",
        hidden_size=48,
        intermediate_size=96,
        num_attention_heads=2,
        num_hidden_layers=3,
        attn_implementation="sdpa",
        target="iOS18",
        seed=22,
    ),
    TextEncoderConfig(
        "te2-gelu-eos-h4",
        projection=True,
        hidden_act="gelu",
        eos_token_id=999,
        projection_dim=24,
        target="iOS17",
        seed=23,
    ),
    TextEncoderConfig(
        "te2-gelu-h8-l3",
        projection=True,
        hidden_act="gelu",
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=8,
        num_hidden_layers=3,
        projection_dim=48,
        target="iOS18",
        seed=24,
    ),
)

VAE_DECODER_CONFIGS: tuple[VAEDecoderConfig, ...] = (
    VAEDecoderConfig("vae-2lvl", block_out_channels=(16, 32), layers_per_block=1, target="macOS13", seed=31),
    VAEDecoderConfig(
        "vae-3lvl-lpb2", block_out_channels=(16, 32, 32), layers_per_block=2, target="iOS18", seed=32
    ),
)

ALL_CONFIGS = UNET_CONFIGS + TEXT_ENCODER_CONFIGS + VAE_DECODER_CONFIGS


def cases(configs: tuple) -> list:
    """`pytest.param(config, precision)` to check: every config in fp32, in fp16 all but the iOS17 UNet.

    The iOS17 UNet is the costliest conversion; the other UNets cover fp16 on the macOS13 and iOS18
    (scaled_dot_product_attention) opsets, which keeps the suite's conversion time near a minute.
    """
    pairs = [(c, "fp32") for c in configs]
    pairs += [(c, "fp16") for c in configs if not (isinstance(c, UNetConfig) and c.target == "iOS17")]
    return [pytest.param(c, p, id=f"{c.name}-{p}") for c, p in pairs]
