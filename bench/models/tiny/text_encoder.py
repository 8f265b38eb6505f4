"""Tiny CLIP text encoders with the I/O of Apple's SDXL `text_encoder` / `text_encoder_2` packages.

Input `input_ids` (1, 77) float32 (Apple converts with float32 ids and casts to int32 inside; the
Swift pipeline feeds Float32). Outputs `hidden_embeds` (1, 77, hidden) = the penultimate layer's
hidden states (HF `hidden_states[-2]`, no final layer norm) and `pooled_outputs`: the final-layer-norm
state at the end-of-text token, projected by `text_projection` for the bigG-style encoder 2 (the
SDXL `text_embeds`), unprojected for encoder 1.
"""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from bench.models.tiny import layers
from bench.models.tiny.layers import Ctx
from bench.models.tiny.spec import TOKEN_COUNT, TextEncoderSpec

PREFIX = "text_encoder.text_model"


def text_encoder_program(ctx: Ctx, spec: TextEncoderSpec, vocab_size: int, eos_id: int, opset):
    """MIL program of one CLIP text encoder (HF `CLIPTextModel[WithProjection]`, traced Apple's way)."""
    d = spec.hidden
    p = ctx.params
    layers.fresh_names()
    causal = np.triu(np.full((TOKEN_COUNT, TOKEN_COUNT), np.finfo(np.float32).min, np.float32), k=1)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, TOKEN_COUNT), dtype=types.fp32)], opset_version=opset)
    def prog(input_ids):
        ids = mb.cast(x=input_ids, dtype="int32")
        table = p.normal(f"{PREFIX}.embeddings.token_embedding.weight", (vocab_size, d), std=0.5)
        h = mb.gather(x=ctx.const(layers.const_name(f"{PREFIX}.embeddings.token_embedding", "weight"), table),
                      indices=ids, axis=0, batch_dims=0)
        positions = p.normal(f"{PREFIX}.embeddings.position_embedding.weight", (1, TOKEN_COUNT, d), std=0.1)
        h = mb.add(x=h, y=ctx.const("position_embeddings", positions))
        with np.errstate(over="ignore"):  # finfo(fp32).min is -inf in fp16, as in converted models
            mask = ctx.const("causal_attention_mask", causal[None, None])
        per_layer = []
        for i in range(spec.layers):
            path = f"{PREFIX}.encoder.layers.{i}"
            x = layers.layer_norm(ctx, h, f"{path}.layer_norm1", d)
            q = layers.linear(ctx, x, f"{path}.self_attn.q_proj", d, d)
            k = layers.linear(ctx, x, f"{path}.self_attn.k_proj", d, d)
            v = layers.linear(ctx, x, f"{path}.self_attn.v_proj", d, d)
            attn = layers.multi_head_attention_bsc(ctx, q, k, v, spec.heads, mask=mask)
            h = mb.add(x=h, y=layers.linear(ctx, attn, f"{path}.self_attn.out_proj", d, d))
            x = layers.layer_norm(ctx, h, f"{path}.layer_norm2", d)
            x = layers.linear(ctx, x, f"{path}.mlp.fc1", d, spec.intermediate)
            if spec.activation == "quick_gelu":
                x = mb.mul(x=x, y=mb.sigmoid(x=mb.mul(x=x, y=ctx.scalar(1.702))))
            else:
                x = mb.gelu(x=x, mode="EXACT")
            x = layers.linear(ctx, x, f"{path}.mlp.fc2", spec.intermediate, d)
            name = layers.output_name(ctx, "hidden_embeds") if i == spec.layers - 2 else None
            h = mb.add(x=h, y=x, **({"name": name} if name else {}))
            per_layer.append(h)
        last = layers.layer_norm(ctx, h, f"{PREFIX}.final_layer_norm", d)
        if spec.eos_by_equal:
            is_eos = mb.cast(x=mb.equal(x=ids, y=np.int32(eos_id)), dtype="int32")
            eos_pos = mb.reduce_argmax(x=is_eos, axis=-1, keep_dims=False)
        else:  # CLIP-L's legacy config: the end token has the highest id
            eos_pos = mb.reduce_argmax(x=ids, axis=-1, keep_dims=False)
        index = mb.stack(values=(np.zeros((1,), np.int32), eos_pos), axis=1)
        pooled_name = layers.output_name(ctx, "pooled_outputs")
        if spec.projection:
            pooled = mb.gather_nd(x=last, indices=index, batch_dims=0)
            pooled = layers.linear(ctx, pooled, "text_encoder.text_projection", d, spec.projection,
                                   bias=False, name=pooled_name)
        else:
            pooled = mb.gather_nd(x=last, indices=index, batch_dims=0, **({"name": pooled_name} if pooled_name else {}))
        hidden_embeds = layers.float_output(ctx, per_layer[-2], "hidden_embeds")
        return hidden_embeds, layers.float_output(ctx, pooled, "pooled_outputs")

    return prog
