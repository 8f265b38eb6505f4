"""Architecture sizes of the generated SDXL model sets (`tiny` and `small`).

Every size keeps SDXL's topology (two CLIP text encoders, the SDXL UNet with its text_time
add-embedding, the refiner UNet, the VAE) and its I/O contract; only widths, depths and the latent
size shrink. The numbers here are the single source for the generator, the zoo's resolution labels
and the module docstring of `bench.models.tiny`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: CLIP context length; every SDXL text encoder takes (1, 77) token ids.
TOKEN_COUNT = 77
#: UNet batch under classifier-free guidance (negative + positive prompt), as Apple converts it.
UNET_BATCH = 2
#: Latent channels of the SDXL VAE.
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class TextEncoderSpec:
    """A CLIP text transformer (HF `CLIPTextModel` / `CLIPTextModelWithProjection` layout)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    activation: str  # "quick_gelu" (CLIP ViT-L) or "gelu" (OpenCLIP bigG)
    projection: int | None  # text_projection width (bigG); None: pooled output is unprojected
    eos_by_equal: bool  # bigG finds the end token with `ids == eos`, CLIP-L with argmax(ids)


@dataclass(frozen=True)
class UNetSpec:
    """An SDXL-style UNet in Apple's (B, C, 1, S) rewrite."""

    block_out_channels: tuple[int, ...]
    attention_levels: tuple[bool, ...]  # which down levels are CrossAttn blocks
    transformer_depth: tuple[int, ...]  # transformer blocks per attention, per level
    heads: tuple[int, ...]  # attention heads per level (the mid block uses the last level's)
    mid_depth: int
    layers_per_block: int
    norm_groups: int
    cross_attention_dim: int  # channels of encoder_hidden_states
    addition_time_embed_dim: int  # sinusoid width per time id
    time_ids: int  # 6 for the base (size, crop, target), 5 for the refiner (size, crop, aesthetic)
    text_embeds_dim: int

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def add_embedding_input_dim(self) -> int:
        return self.text_embeds_dim + self.time_ids * self.addition_time_embed_dim


@dataclass(frozen=True)
class VAESpec:
    """An `AutoencoderKL` (diffusers) with SDXL's layout, narrowed."""

    block_out_channels: tuple[int, ...]
    layers_per_block: int
    norm_groups: int


@dataclass(frozen=True)
class SizeSpec:
    """One generated size: every part of the set plus the latent side."""

    name: str
    latent_size: int
    text_encoder: TextEncoderSpec
    text_encoder_2: TextEncoderSpec
    unet: UNetSpec
    refiner: UNetSpec
    vae: VAESpec
    vocab_merges: int  # BPE merges in the generated vocabulary

    @property
    def resolution(self) -> int:
        return self.latent_size * 8


def _sizes() -> dict[str, SizeSpec]:
    tiny_te1 = TextEncoderSpec(32, 2, 2, 64, "quick_gelu", None, eos_by_equal=False)
    tiny_te2 = TextEncoderSpec(64, 2, 4, 128, "gelu", 64, eos_by_equal=True)
    small_te1 = TextEncoderSpec(64, 2, 4, 256, "quick_gelu", None, eos_by_equal=False)
    small_te2 = TextEncoderSpec(128, 2, 8, 512, "gelu", 128, eos_by_equal=True)
    tiny = SizeSpec(
        name="tiny",
        latent_size=64,
        text_encoder=tiny_te1,
        text_encoder_2=tiny_te2,
        unet=UNetSpec(
            block_out_channels=(16, 32, 64),
            attention_levels=(False, True, True),
            transformer_depth=(0, 1, 1),
            heads=(1, 2, 2),
            mid_depth=1,
            layers_per_block=2,
            norm_groups=8,
            cross_attention_dim=tiny_te1.hidden + tiny_te2.hidden,
            addition_time_embed_dim=8,
            time_ids=6,
            text_embeds_dim=64,
        ),
        refiner=UNetSpec(
            block_out_channels=(16, 32, 64, 64),
            attention_levels=(False, True, True, False),
            transformer_depth=(0, 1, 1, 0),
            heads=(1, 2, 2, 2),
            mid_depth=1,
            layers_per_block=1,  # SDXL's refiner has 2; one keeps the six tiny refiners quick to build
            norm_groups=8,
            cross_attention_dim=tiny_te2.hidden,
            addition_time_embed_dim=8,
            time_ids=5,
            text_embeds_dim=64,
        ),
        vae=VAESpec(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_groups=4),
        vocab_merges=480,
    )
    small = SizeSpec(
        name="small",
        latent_size=32,
        text_encoder=small_te1,
        text_encoder_2=small_te2,
        unet=UNetSpec(
            block_out_channels=(64, 128, 256),
            attention_levels=(False, True, True),
            transformer_depth=(0, 1, 2),
            heads=(2, 4, 8),
            mid_depth=2,
            layers_per_block=2,
            norm_groups=32,
            cross_attention_dim=small_te1.hidden + small_te2.hidden,
            addition_time_embed_dim=32,
            time_ids=6,
            text_embeds_dim=128,
        ),
        refiner=UNetSpec(
            block_out_channels=(64, 128, 256, 256),
            attention_levels=(False, True, True, False),
            transformer_depth=(0, 1, 1, 0),
            heads=(2, 4, 8, 8),
            mid_depth=1,
            layers_per_block=2,
            norm_groups=32,
            cross_attention_dim=small_te2.hidden,
            addition_time_embed_dim=32,
            time_ids=5,
            text_embeds_dim=128,
        ),
        vae=VAESpec(block_out_channels=(16, 32, 64, 64), layers_per_block=1, norm_groups=8),
        vocab_merges=480,
    )
    return {"tiny": tiny, "small": small}


SIZES: dict[str, SizeSpec] = _sizes()


#: SDXL base's own UNet (stabilityai/stable-diffusion-xl-base-1.0 unet/config.json): 2.6 B parameters.
#: Not a generated set (its fp16 package is 5 GB); `bench.models.tiny.realsize` writes a UNet of it
#: with random weights for memory and speed work on the reference engine.
SDXL_BASE_UNET = UNetSpec(
    block_out_channels=(320, 640, 1280),
    attention_levels=(False, True, True),
    transformer_depth=(0, 2, 10),
    heads=(5, 10, 20),  # head dim 64
    mid_depth=10,
    layers_per_block=2,
    norm_groups=32,
    cross_attention_dim=2048,
    addition_time_embed_dim=256,
    time_ids=6,
    text_embeds_dim=1280,
)
