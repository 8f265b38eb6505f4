"""Tiny SDXL UNet (base and refiner) in Apple's ml-stable-diffusion rewrite.

Apple's `UNet2DConditionModelXL` keeps activations in (B, C, 1, S) / (B, C, H, W) layout, projects
with 1x1 convolutions, normalizes transformer inputs with LayerNormANE (axis 1) and offers three
attention implementations. This module emits that graph in MIL:

- time embedding: sinusoids of `timestep` -> TimestepEmbedding (1x1 convs), plus SDXL's text_time
  add-embedding: sinusoids of every `time_ids` entry, concatenated after `text_embeds`.
- down blocks (DownBlock2D, then CrossAttnDownBlock2D), the cross-attention mid block, up blocks
  with skip concatenations; ResnetBlock2D with GroupNorm; SpatialTransformer with
  BasicTransformerBlocks (self-attention, cross-attention on `encoder_hidden_states`, GEGLU FF).
- attention (as apple/ml-stable-diffusion implements it): ORIGINAL (one batched matmul per layer), SPLIT_EINSUM
  (per-head einsums, keys in the channel position), SPLIT_EINSUM_V2 (as SPLIT_EINSUM with queries
  cut into chunks of 512 tokens; falls back to SPLIT_EINSUM when fewer than 512 queries).

Inputs: `sample` (B, 4, h, w), `timestep` (B,), `encoder_hidden_states` (B, cross_dim, 1, 77),
`time_ids` (B, 6) [refiner: (B, 5)], `text_embeds` (B, text_embeds_dim). Output `noise_pred`
(B, 4, h, w), float32.
"""

from __future__ import annotations

from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from bench.models.tiny import layers
from bench.models.tiny.layers import Ctx
from bench.models.tiny.spec import LATENT_CHANNELS, TOKEN_COUNT, UNET_BATCH, UNetSpec

ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = ("ORIGINAL", "SPLIT_EINSUM", "SPLIT_EINSUM_V2")
#: Query chunk of SPLIT_EINSUM_V2 (Apple's CHUNK_SIZE).
QUERY_CHUNK = 512
#: UNet input names, in Apple's order.
UNET_INPUTS: tuple[str, ...] = ("sample", "timestep", "encoder_hidden_states", "time_ids", "text_embeds")


def _original(ctx: Ctx, q, k, v, heads: int, dim_head: int):
    batch, _, _, sq = (int(d) for d in q.shape)
    mh_q = mb.reshape(x=q, shape=[batch, heads, dim_head, -1])
    mh_k = mb.reshape(x=k, shape=[batch, heads, dim_head, -1])
    mh_v = mb.reshape(x=v, shape=[batch, heads, dim_head, -1])
    weights = mb.matmul(x=mh_q, y=mh_k, transpose_x=True, transpose_y=False)  # einsum bhcq,bhck->bhqk
    weights = mb.softmax(x=mb.mul(x=weights, y=ctx.scalar(dim_head**-0.5)), axis=3)
    out = mb.matmul(x=mh_v, y=weights, transpose_x=False, transpose_y=True)  # einsum bhqk,bhck->bhcq
    return mb.reshape(x=out, shape=[batch, heads * dim_head, 1, sq])


def _head_slices(q, k, v, heads: int, dim_head: int):
    batch, _, _, sq = (int(d) for d in q.shape)
    sk = int(k.shape[3])
    kt = mb.transpose(x=k, perm=[0, 3, 2, 1])  # (B, Sk, 1, C)
    for h in range(heads):
        lo, hi = h * dim_head, (h + 1) * dim_head
        yield (
            mb.slice_by_index(x=q, begin=[0, lo, 0, 0], end=[batch, hi, 1, sq]),
            mb.slice_by_index(x=kt, begin=[0, 0, 0, lo], end=[batch, sk, 1, hi]),
            mb.slice_by_index(x=v, begin=[0, lo, 0, 0], end=[batch, hi, 1, sk]),
        )


def _einsum_head(ctx: Ctx, qi, ki, vi, dim_head: int):
    weights = mb.einsum(values=(ki, qi), equation="bkhc,bchq->bkhq")  # (B, Sk, 1, Sq)
    weights = mb.softmax(x=mb.mul(x=weights, y=ctx.scalar(dim_head**-0.5)), axis=1)
    return mb.einsum(values=(vi, weights), equation="bchk,bkhq->bchq")  # (B, d, 1, Sq)


def _split_einsum(ctx: Ctx, q, k, v, heads: int, dim_head: int):
    outs = [_einsum_head(ctx, qi, ki, vi, dim_head) for qi, ki, vi in _head_slices(q, k, v, heads, dim_head)]
    return mb.concat(values=outs, axis=1)


def _split_einsum_v2(ctx: Ctx, q, k, v, heads: int, dim_head: int):
    batch, _, _, sq = (int(d) for d in q.shape)
    chunks = sq // QUERY_CHUNK
    if chunks == 0:
        return _split_einsum(ctx, q, k, v, heads, dim_head)
    outs = []
    for qi, ki, vi in _head_slices(q, k, v, heads, dim_head):
        parts = [
            _einsum_head(
                ctx,
                mb.slice_by_index(x=qi, begin=[0, 0, 0, c * QUERY_CHUNK], end=[batch, dim_head, 1, (c + 1) * QUERY_CHUNK]),
                ki, vi, dim_head,
            )
            for c in range(chunks)
        ]
        outs.append(mb.concat(values=parts, axis=3))
    return mb.concat(values=outs, axis=1)


_ATTENTION = {"ORIGINAL": _original, "SPLIT_EINSUM": _split_einsum, "SPLIT_EINSUM_V2": _split_einsum_v2}


class _UNetEmitter:
    """Emits one UNet; holds what every block needs (params, attention choice, embeddings)."""

    def __init__(self, ctx: Ctx, spec: UNetSpec, attention: str) -> None:
        if attention not in _ATTENTION:
            raise ValueError(f"unknown attention implementation {attention!r}")
        self.spec = spec
        self.p = ctx
        self.attention = _ATTENTION[attention]

    def timestep_mlp(self, x, path: str, cin: int, cout: int):
        x = mb.expand_dims(x=mb.expand_dims(x=x, axes=[-1]), axes=[-1])
        x = layers.conv2d(self.p, x, f"{path}.linear_1", cin, cout)
        return layers.conv2d(self.p, mb.silu(x=x), f"{path}.linear_2", cout, cout)

    def resnet(self, x, path: str, cin: int, cout: int, emb):
        g = self.spec.norm_groups
        h = mb.silu(x=layers.group_norm(self.p, x, f"{path}.norm1", cin, g, 1e-5))
        h = layers.conv2d(self.p, h, f"{path}.conv1", cin, cout, 3)
        # every resnet applies silu to the same embedding; coremltools' CSE keeps one of them
        act = mb.silu(x=emb) if self.p.lowered else self._emb_act(emb)
        t = layers.conv2d(self.p, act, f"{path}.time_emb_proj", self.spec.time_embed_dim, cout)
        h = mb.add(x=h, y=t)
        h = mb.silu(x=layers.group_norm(self.p, h, f"{path}.norm2", cout, g, 1e-5))
        h = layers.conv2d(self.p, h, f"{path}.conv2", cout, cout, 3)
        if cin != cout:
            x = layers.conv2d(self.p, x, f"{path}.conv_shortcut", cin, cout)
        return mb.add(x=x, y=h)

    def _emb_act(self, emb):
        if getattr(self, "_act_of", None) is not emb:
            self._act_of, self._act = emb, mb.silu(x=emb)
        return self._act

    def cross_attention(self, x, path: str, channels: int, heads: int, context=None, context_dim: int | None = None):
        context = x if context is None else context
        context_dim = channels if context_dim is None else context_dim
        q = layers.conv2d(self.p, x, f"{path}.to_q", channels, channels, bias=False)
        k = layers.conv2d(self.p, context, f"{path}.to_k", context_dim, channels, bias=False)
        v = layers.conv2d(self.p, context, f"{path}.to_v", context_dim, channels, bias=False)
        out = self.attention(self.p, q, k, v, heads, channels // heads)
        return layers.conv2d(self.p, out, f"{path}.to_out.0", channels, channels)

    def transformer_block(self, h, path: str, channels: int, heads: int, context):
        a = self.cross_attention(layers.layer_norm_ane(self.p, h, f"{path}.norm1", channels), f"{path}.attn1", channels, heads)
        h = mb.add(x=a, y=h)
        a = self.cross_attention(
            layers.layer_norm_ane(self.p, h, f"{path}.norm2", channels), f"{path}.attn2", channels, heads,
            context=context, context_dim=self.spec.cross_attention_dim,
        )
        h = mb.add(x=a, y=h)
        inner = channels * 4
        f = layers.conv2d(self.p, layers.layer_norm_ane(self.p, h, f"{path}.norm3", channels), f"{path}.ff.net.0.proj", channels, inner * 2)
        hidden, gate = mb.split(x=f, split_sizes=[inner, inner], axis=1)
        f = layers.conv2d(self.p, mb.mul(x=hidden, y=mb.gelu(x=gate, mode="EXACT")), f"{path}.ff.net.2", inner, channels)
        return mb.add(x=f, y=h)

    def spatial_transformer(self, x, path: str, channels: int, heads: int, depth: int, context):
        batch, _, height, width = (int(d) for d in x.shape)
        h = layers.group_norm(self.p, x, f"{path}.norm", channels, self.spec.norm_groups, 1e-6)
        h = layers.conv2d(self.p, h, f"{path}.proj_in", channels, channels)
        h = mb.reshape(x=h, shape=[batch, channels, 1, height * width])
        for i in range(depth):
            h = self.transformer_block(h, f"{path}.transformer_blocks.{i}", channels, heads, context)
        h = mb.reshape(x=h, shape=[batch, channels, height, width])
        return mb.add(x=layers.conv2d(self.p, h, f"{path}.proj_out", channels, channels), y=x)

    def forward(self, sample, timestep, context, time_ids, text_embeds):
        s = self.spec
        c0 = s.block_out_channels[0]
        emb = self.timestep_mlp(layers.timestep_embedding(self.p, timestep, c0), "time_embedding", c0, s.time_embed_dim)
        flat_ids = mb.reshape(x=time_ids, shape=[UNET_BATCH * s.time_ids])
        time_embeds = mb.reshape(x=layers.timestep_embedding(self.p, flat_ids, s.addition_time_embed_dim), shape=[UNET_BATCH, -1])
        add_embeds = mb.concat(values=(text_embeds, time_embeds), axis=-1)
        emb = mb.add(x=emb, y=self.timestep_mlp(add_embeds, "add_embedding", s.add_embedding_input_dim, s.time_embed_dim))

        h = layers.conv2d(self.p, sample, "conv_in", LATENT_CHANNELS, c0, 3)
        skips = [(h, c0)]
        ch = c0
        levels = len(s.block_out_channels)
        for i, cout in enumerate(s.block_out_channels):
            for j in range(s.layers_per_block):
                h = self.resnet(h, f"down_blocks.{i}.resnets.{j}", ch, cout, emb)
                ch = cout
                if s.attention_levels[i]:
                    h = self.spatial_transformer(h, f"down_blocks.{i}.attentions.{j}", ch, s.heads[i], s.transformer_depth[i], context)
                skips.append((h, ch))
            if i < levels - 1:
                h = layers.conv2d(self.p, h, f"down_blocks.{i}.downsamplers.0.conv", ch, ch, 3, stride=2)
                skips.append((h, ch))

        h = self.resnet(h, "mid_block.resnets.0", ch, ch, emb)
        h = self.spatial_transformer(h, "mid_block.attentions.0", ch, s.heads[-1], s.mid_depth, context)
        h = self.resnet(h, "mid_block.resnets.1", ch, ch, emb)

        for i, cout in enumerate(reversed(s.block_out_channels)):
            level = levels - 1 - i
            for j in range(s.layers_per_block + 1):
                skip, skip_ch = skips.pop()
                h = mb.concat(values=(h, skip), axis=1)
                h = self.resnet(h, f"up_blocks.{i}.resnets.{j}", ch + skip_ch, cout, emb)
                ch = cout
                if s.attention_levels[level]:
                    h = self.spatial_transformer(h, f"up_blocks.{i}.attentions.{j}", ch, s.heads[level], s.transformer_depth[level], context)
            if i < levels - 1:
                h = mb.upsample_nearest_neighbor(x=h, scale_factor_height=2.0, scale_factor_width=2.0)
                h = layers.conv2d(self.p, h, f"up_blocks.{i}.upsamplers.0.conv", ch, ch, 3)

        h = mb.silu(x=layers.group_norm(self.p, h, "conv_norm_out", ch, s.norm_groups, 1e-5))
        out = layers.conv2d(self.p, h, "conv_out", ch, LATENT_CHANNELS, 3, name=layers.output_name(self.p, "noise_pred"))
        return layers.float_output(self.p, out, "noise_pred")


def unet_input_shapes(spec: UNetSpec, latent_size: int) -> dict[str, tuple[int, ...]]:
    """Input name -> shape of a UNet built for `latent_size` latents (batch 2, guidance)."""
    return {
        "sample": (UNET_BATCH, LATENT_CHANNELS, latent_size, latent_size),
        "timestep": (UNET_BATCH,),
        "encoder_hidden_states": (UNET_BATCH, spec.cross_attention_dim, 1, TOKEN_COUNT),
        "time_ids": (UNET_BATCH, spec.time_ids),
        "text_embeds": (UNET_BATCH, spec.text_embeds_dim),
    }


def unet_program(ctx: Ctx, spec: UNetSpec, latent_size: int, attention: str, opset):
    """MIL program of one UNet. fp16 programs take fp16 inputs, as Apple's fp16 conversions declare
    them (the UNet sample inputs were float16 arrays); `noise_pred` is always float32."""
    shapes = unet_input_shapes(spec, latent_size)
    dtype = types.fp16 if ctx.fp16 else types.fp32
    input_specs = [mb.TensorSpec(shape=shapes[name], dtype=dtype) for name in UNET_INPUTS]
    emitter = _UNetEmitter(ctx, spec, attention)
    layers.fresh_names()

    @mb.program(input_specs=input_specs, opset_version=opset)
    def prog(sample, timestep, encoder_hidden_states, time_ids, text_embeds):
        return emitter.forward(sample, timestep, encoder_hidden_states, time_ids, text_embeds)

    return prog
