"""MIL emitters for the layers SDXL is made of, in the op patterns real conversions produce.

Real Apple models are torch modules traced and converted by coremltools: the torch frontend lowers
each module (GroupNorm to reshape / reduce_mean / sub / square / sqrt / real_div, Apple's
LayerNormANE to a mean / rsqrt sequence, ...) and the default pass pipeline then fuses what it can
(GroupNorm's affine into `batch_norm`, LayerNormANE into `layer_norm` on axis 1 with gamma and beta,
duplicate subexpressions merged, fp32 -> fp16 casts folded into the consts).

Running that pipeline on a whole UNet takes tens of seconds per model, too slow to generate every
variant in under a minute, so the emitters write the *post-pipeline* form directly (`Ctx.lowered`
False, the default). With `Ctx.lowered` True they write the torch frontend's form instead; a test
converts that through coremltools' default pipeline and checks both give the same op histogram.

Weights are `const` ops named like the torch frontend names them: the module path with dots as
underscores plus `_weight` / `_bias`, with `_to_fp16` appended in fp16 programs (as coremltools'
fp16 pass renames them). Mixed-bit recipes key on these names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from coremltools.converters.mil import Builder as mb

from bench.models.tiny.weights import ParamSource


@dataclass(frozen=True)
class Ctx:
    """What every emitter needs: the parameter source, the float precision, the emission form."""

    params: ParamSource
    fp16: bool = False
    lowered: bool = False

    @property
    def dtype(self) -> type:
        return np.float16 if self.fp16 else np.float32

    def scalar(self, value: float):
        return self.dtype(value)

    def array(self, value: np.ndarray) -> np.ndarray:
        return np.asarray(value).astype(self.dtype)

    def const(self, name: str, value: np.ndarray):
        """A float const op in this precision, named as coremltools names converted weights."""
        return mb.const(val=self.array(value), name=f"{name}_to_fp16" if self.fp16 else name)


#: Every module path a parameter was emitted for (maps const names back to torch module names).
PATHS: set[str] = set()


def fresh_names() -> None:
    """Restart coremltools' automatic op numbering (`conv_0`, `add_3`, ...) for a new program.

    The builder numbers ops with a process-wide counter, so without this a program's op names
    would depend on what was built before it in the same process: the bytes of a package would
    depend on build order, and two builds of one UNet (as chunking needs) would not share names.
    """
    from coremltools.converters.mil.mil.builder import Builder

    Builder.name_count.clear()


def const_name(path: str, leaf: str) -> str:
    """Const op name (fp32 form) of parameter `leaf` of module `path` (`a.b.0` -> `a_b_0_weight`)."""
    return f"{path.replace('.', '_')}_{leaf}"


def _param(ctx: Ctx, array: np.ndarray, path: str, leaf: str):
    PATHS.add(path)
    return ctx.const(const_name(path, leaf), array)


def conv2d(ctx: Ctx, x, path: str, cin: int, cout: int, kernel: int = 1, stride: int = 1,
           padding: int | None = None, bias: bool = True, gain: float = 1.0, name: str | None = None):
    """`nn.Conv2d` (1x1 convs are Apple's projections in the (B, C, 1, S) layout)."""
    padding = kernel // 2 if padding is None else padding
    weight = ctx.params.weight(f"{path}.weight", (cout, cin, kernel, kernel), cin * kernel * kernel, gain)
    kwargs = {
        "x": x,
        "weight": _param(ctx, weight, path, "weight"),
        "strides": [stride, stride],
        "pad_type": "custom" if padding else "valid",
        "pad": [padding] * 4,
        "dilations": [1, 1],
        "groups": 1,
    }
    if bias:
        kwargs["bias"] = _param(ctx, ctx.params.bias(f"{path}.bias", (cout,)), path, "bias")
    if name:
        kwargs["name"] = name
    return mb.conv(**kwargs)


def linear(ctx: Ctx, x, path: str, cin: int, cout: int, bias: bool = True, gain: float = 1.0,
           name: str | None = None):
    """`nn.Linear` as the torch frontend emits it (a `linear` op, weight (out, in))."""
    weight = ctx.params.weight(f"{path}.weight", (cout, cin), cin, gain)
    kwargs = {"x": x, "weight": _param(ctx, weight, path, "weight")}
    if bias:
        kwargs["bias"] = _param(ctx, ctx.params.bias(f"{path}.bias", (cout,)), path, "bias")
    if name:
        kwargs["name"] = name
    return mb.linear(**kwargs)


def group_norm(ctx: Ctx, x, path: str, channels: int, groups: int, eps: float,
               shape: list[int] | None = None):
    """`nn.GroupNorm`, lowered as coremltools lowers it (never instance_norm).

    `shape` views the input in another shape first (diffusers' attention normalizes (B, C, H*W));
    the view and the grouping reshape are one reshape, as coremltools merges consecutive reshapes.
    The affine part becomes `batch_norm` (mean 0, variance 1, default epsilon) on rank-4 inputs,
    as coremltools' `fuse_elementwise_to_batchnorm` pass rewrites it; on other ranks it stays
    mul + add.
    """
    if shape is not None and ctx.lowered:
        x = mb.reshape(x=x, shape=shape)
    shape = [int(d) for d in x.shape] if shape is None else list(shape)
    grouped = [shape[0], groups, channels // groups] + shape[2:]
    axes = list(range(2, len(grouped)))
    r = mb.reshape(x=x, shape=grouped)
    mean = mb.reduce_mean(x=r, axes=axes, keep_dims=True)
    if ctx.lowered:  # the frontend's variance helper recomputes mean and difference
        centered = mb.sub(x=r, y=mb.reduce_mean(x=r, axes=axes, keep_dims=True))
    else:
        centered = mb.sub(x=r, y=mean)
    var = mb.reduce_mean(x=mb.square(x=centered), axes=axes, keep_dims=True)
    std = mb.sqrt(x=mb.add(x=var, y=ctx.scalar(eps)))
    diff = mb.sub(x=r, y=mean) if ctx.lowered else centered
    normed = mb.reshape(x=mb.real_div(x=diff, y=std), shape=shape)
    gamma = ctx.params.norm_scale(f"{path}.weight", (channels,))
    beta = ctx.params.norm_shift(f"{path}.bias", (channels,))
    if len(shape) == 4 and not ctx.lowered:
        return mb.batch_norm(
            x=normed,
            mean=ctx.array(np.zeros(channels)),
            variance=ctx.array(np.ones(channels)),
            gamma=_param(ctx, gamma, path, "weight"),
            beta=_param(ctx, beta, path, "bias"),
            epsilon=ctx.scalar(1e-5),  # the fused op keeps batch_norm's default epsilon
        )
    affine = (1, channels) + (1,) * (len(shape) - 2)
    scaled = mb.mul(x=normed, y=_param(ctx, gamma.reshape(affine), path, "weight"))
    return mb.add(x=scaled, y=_param(ctx, beta.reshape(affine), path, "bias"))


def layer_norm_ane(ctx: Ctx, x, path: str, channels: int, eps: float = 1e-5):
    """Apple's `LayerNormANE` over axis 1 of (B, C, 1, S); it computes `(norm(x) + bias) * weight`.

    Converted, that is one `layer_norm` on axes [1] with gamma = weight and beta = bias * weight.
    """
    bias = ctx.params.norm_shift(f"{path}.bias", (channels,))
    weight = ctx.params.norm_scale(f"{path}.weight", (channels,))
    if not ctx.lowered:
        return mb.layer_norm(
            x=x,
            axes=[1],
            gamma=_param(ctx, weight, path, "weight"),
            beta=_param(ctx, bias * weight, path, "bias"),
            epsilon=ctx.scalar(eps),
        )
    mean = mb.reduce_mean(x=x, axes=[1], keep_dims=True)
    zero_mean = mb.sub(x=x, y=mean)
    var = mb.reduce_mean(x=mb.mul(x=zero_mean, y=zero_mean), axes=[1], keep_dims=True)
    out = mb.mul(x=zero_mean, y=mb.rsqrt(x=mb.add(x=var, y=ctx.scalar(eps))))
    out = mb.add(x=out, y=_param(ctx, bias.reshape(1, channels, 1, 1), path, "bias"))
    return mb.mul(x=out, y=_param(ctx, weight.reshape(1, channels, 1, 1), path, "weight"))


def layer_norm(ctx: Ctx, x, path: str, channels: int, eps: float = 1e-5):
    """`nn.LayerNorm` over the last axis (the torch frontend maps it to one `layer_norm` op)."""
    return mb.layer_norm(
        x=x,
        axes=[-1],
        gamma=_param(ctx, ctx.params.norm_scale(f"{path}.weight", (channels,)), path, "weight"),
        beta=_param(ctx, ctx.params.norm_shift(f"{path}.bias", (channels,)), path, "bias"),
        epsilon=ctx.scalar(eps),
    )


def multi_head_attention_bsc(ctx: Ctx, q, k, v, heads: int, mask=None):
    """Attention on (B, S, C) tensors the way HF CLIP / diffusers' VAE attention convert:
    reshape to (B, S, heads, d), scale q, transpose to (B, heads, S, d), matmul, softmax, matmul."""
    batch, seq, channels = (int(d) for d in q.shape)
    d = channels // heads
    shape = [batch, seq, -1, d]
    q4 = mb.mul(x=mb.reshape(x=q, shape=shape), y=ctx.scalar(d**-0.5))
    k4 = mb.reshape(x=k, shape=shape)
    v4 = mb.reshape(x=v, shape=shape)
    qt = mb.transpose(x=q4, perm=[0, 2, 1, 3])
    kt = mb.transpose(x=k4, perm=[0, 2, 1, 3])
    scores = mb.matmul(x=qt, y=kt, transpose_x=False, transpose_y=True)
    if mask is not None:
        scores = mb.add(x=scores, y=mask)
    weights = mb.softmax(x=scores, axis=-1)
    out = mb.matmul(x=weights, y=mb.transpose(x=v4, perm=[0, 2, 1, 3]), transpose_x=False, transpose_y=False)
    out = mb.transpose(x=out, perm=[0, 2, 1, 3])
    return mb.reshape(x=out, shape=[batch, seq, -1])


def timestep_embedding(ctx: Ctx, t, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0,
                       max_period: float = 10000.0):
    """diffusers' `get_timestep_embedding` for a (N,) input: (N, dim) sin / cos features."""
    half = dim // 2
    exponent = -np.log(max_period) * np.arange(half, dtype=np.float32) / (half - shift)
    freqs = ctx.array(np.exp(exponent)[None, :])
    angles = mb.mul(x=mb.expand_dims(x=t, axes=[1]), y=freqs)
    emb = mb.concat(values=(mb.sin(x=angles), mb.cos(x=angles)), axis=-1)
    if flip_sin_to_cos:
        n = int(emb.shape[0])
        emb = mb.concat(
            values=(
                mb.slice_by_index(x=emb, begin=[0, half], end=[n, 2 * half]),
                mb.slice_by_index(x=emb, begin=[0, 0], end=[n, half]),
            ),
            axis=-1,
        )
    return emb


def output_name(ctx: Ctx, name: str) -> str | None:
    """Name for the op computing output `name`: itself in fp32 programs; in fp16 programs the
    output is the fp32 cast after it (see `float_output`), so the op keeps an automatic name."""
    return None if ctx.fp16 else name


def float_output(ctx: Ctx, x, name: str):
    """A model output: fp32, as Apple declares every float output (a final cast in fp16 programs)."""
    return mb.cast(x=x, dtype="fp32", name=name) if ctx.fp16 else x
