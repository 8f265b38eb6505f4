"""Convolution and pooling kernels: conv, conv_transpose, max_pool, avg_pool, l2_pool.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/conv.py`, `pool.py`, iOS17 revisions):
x is (N, C, *spatial) with 1 to 3 spatial dims, conv weight (C_out, C_in / groups, *K), conv_transpose
weight (C_in, C_out / groups, *K); pads are (before, after) per spatial dim.

How the 2-D convolution is computed (it dominates a UNet call):
- 3x3, stride 1, at least 128 channels in and out: Winograd F(4x4, 3x3) or F(2x2, 3x3)
  (`winograd.py`, which says when each), with the weight transformed once at load by `prepare_conv`.
- 1x1, stride 1: one GEMM per call, (C_out, C_in) @ (C_in, N*H*W).
- k x k, stride 1, C_out <= C_in ("shifted GEMM"): the input is zero-padded once into a flat
  (C_in, N, Hp*Wp) buffer; one GEMM multiplies all k*k weight slices at once,
  (k*k*C_out, C_in) @ (C_in, N*Hp*Wp), and the output is the sum of the k*k results shifted by
  their offsets i*Wp + j in the flat padded layout (columns past W are cropped). This never
  materialises the k*k-times larger im2col matrix.
- otherwise (C_out > C_in, strides, 1-D / 3-D): im2col, one (C_out, C_in*k*k) @ (C_in*k*k, N*Ho*Wo) GEMM.
Measured on this 2-core box at UNet sizes (batch 2, 3x3, fp32, best of many runs; the box was shared
so figures are noisy): 128->128 @ 32x32 shifted 13-16 ms vs im2col 20-28 ms (torch 16 ms);
320->320 @ 32x32 shifted 87 ms vs im2col 104 ms (torch 73 ms); 64->4 @ 32x32 shifted 0.33 ms vs
im2col 1.1 ms; but 4->64 @ 32x32 im2col 0.13 ms vs shifted 0.53 ms (the k*k GEMM output is what
the shifted method pays for, so it loses when C_out > C_in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops import winograd
from bench.engines.reference.ops._util import (
    F32,
    as_bool,
    as_int,
    as_ints,
    as_str,
    unsupported,
)
from bench.engines.reference.ops.gemm import matmul as product
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "conv"


# -- padding -----------------------------------------------------------------------------------------------


def conv_pads(
    pad_type: str,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pad: Sequence[int] | None,
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim, as MIL defines pad_type valid / same / same_lower / custom."""
    n = len(kernel)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        values = list(pad or [])
        if len(values) != 2 * n:
            raise OpExecutionError(f"custom pad needs {2 * n} values, got {len(values)}")
        return [(values[2 * i], values[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
            effective = (k - 1) * d + 1
            total = max(0, s * math.ceil(size / s) - size + effective - s)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if pad_type == "same" else (large, small))
        return pads
    raise unsupported(f"pad_type {pad_type!r}; expected valid, same, same_lower or custom")


def _spatial_params(x: np.ndarray, kernel: Sequence[int], strides: Any, dilations: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = len(kernel)
    s = as_ints(strides) if strides is not None else (1,) * n
    d = as_ints(dilations) if dilations is not None else (1,) * n
    if len(s) != n or len(d) != n:
        raise OpExecutionError(f"strides {list(s)} / dilations {list(d)} must have {n} entries for a {n}-D conv")
    return s, d


def _zero_pad(x: np.ndarray, pads: Sequence[tuple[int, int]]) -> np.ndarray:
    if not any(b or e for b, e in pads):
        return x
    # Negative custom pads crop, as in the other Core ML pad semantics.
    if any(b < 0 or e < 0 for b, e in pads):
        index = (slice(None), slice(None)) + tuple(slice(max(-b, 0), x.shape[2 + i] - max(-e, 0)) for i, (b, e) in enumerate(pads))
        x = x[index]
        pads = [(max(b, 0), max(e, 0)) for b, e in pads]
    out = np.zeros(x.shape[:2] + tuple(x.shape[2 + i] + b + e for i, (b, e) in enumerate(pads)), dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(b, b + x.shape[2 + i]) for i, (b, _) in enumerate(pads))] = x
    return out


# -- conv --------------------------------------------------------------------------------------------------


def _finish(y_cn: np.ndarray, n: int, c_out: int, spatial: tuple[int, ...], bias: np.ndarray | None) -> np.ndarray:
    """(C_out, N, *spatial) GEMM result (any strides) -> contiguous (N, C_out, *spatial) + bias, in one pass."""
    out = np.empty((n, c_out) + spatial, F32)
    src = np.moveaxis(y_cn, 1, 0)
    if bias is None:
        np.copyto(out, src)
    else:
        np.add(src, np.asarray(bias, F32).reshape((c_out,) + (1,) * len(spatial)), out=out)
    return out


def _conv_1x1(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    n, c = x.shape[:2]
    c_out = w.shape[0]
    spatial = x.shape[2:]
    w2 = w.reshape(c_out, c)
    if n == 1:
        y = product(w2, x.reshape(c, -1))
        if bias is not None:
            y += np.asarray(bias, F32).reshape(c_out, 1)
        return y.reshape((1, c_out) + spatial)
    y = product(w2, x.reshape(n, c, -1))  # (N, C_out, L): one GEMM per batch, no transposes
    if bias is not None:
        y += np.asarray(bias, F32).reshape(c_out, 1)
    return y.reshape((n, c_out) + spatial)


def _conv2d_shifted(
    x: np.ndarray, w: np.ndarray, pads: Sequence[tuple[int, int]], dil: tuple[int, int], bias: np.ndarray | None
) -> np.ndarray:
    """Stride-1 2-D conv by the shifted-GEMM method (see module doc); pads are non-negative."""
    n, c, h, wd = x.shape
    (top, bottom), (left, right) = pads
    hp, wp = h + top + bottom, wd + left + right
    c_out, _, kh, kw = w.shape
    dh, dw = dil
    ho, wo = hp - (kh - 1) * dh, wp - (kw - 1) * dw
    lx = hp * wp + (kw - 1) * dw  # the last shift reads (kw-1)*dw zeros past the padded image
    # Zero padding and the (C, N, flat) layout in one copy.
    flat = np.zeros((c, n, lx), F32)
    flat[:, :, : hp * wp].reshape(c, n, hp, wp)[:, :, top : top + h, left : left + wd] = x.transpose(1, 0, 2, 3)
    w_all = np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(kh * kw * c_out, c)
    y = product(w_all, flat.reshape(c, n * lx)).reshape(kh * kw, c_out, n, lx)
    span = ho * wp
    acc = np.empty((c_out, n, span), F32)
    k = 0
    for i in range(kh):
        for j in range(kw):
            offset = i * dh * wp + j * dw
            if k == 0:
                np.copyto(acc, y[0, :, :, offset : offset + span])
            else:
                acc += y[k, :, :, offset : offset + span]
            k += 1
    cropped = acc.reshape(c_out, n, ho, wp)[..., :wo]
    return _finish(cropped, n, c_out, (ho, wo), bias)


def _im2col(xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """(C, *K, N, *out) columns of a padded (N, C, *spatial) input, one strided copy per kernel offset."""
    n, c = xp.shape[:2]
    out_sizes = tuple((xp.shape[2 + i] - (k - 1) * d - 1) // s + 1 for i, (k, s, d) in enumerate(zip(kernel, strides, dil)))
    if any(o <= 0 for o in out_sizes):
        raise OpExecutionError(f"conv output would be empty: input {list(xp.shape[2:])} (padded), kernel {list(kernel)}")
    cols = np.empty((c,) + tuple(kernel) + (n,) + out_sizes, F32)
    src = xp.transpose((1, 0) + tuple(range(2, xp.ndim)))  # (C, N, *spatial)
    for offsets in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (size - 1) * s + 1, s) for o, d, s, size in zip(offsets, dil, strides, out_sizes)
        )
        cols[(slice(None),) + offsets] = src[index]
    return cols, out_sizes


def _conv_one_group(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, strides: tuple[int, ...], dil: tuple[int, ...], pads: list[tuple[int, int]]
) -> np.ndarray:
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    c_out = w.shape[0]
    if all(k == 1 for k in kernel) and not any(b or e for b, e in pads):
        if any(s != 1 for s in strides):
            x = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
        return _conv_1x1(np.ascontiguousarray(x), w, bias)
    if len(kernel) == 2 and strides == (1, 1) and c_out <= c and all(b >= 0 and e >= 0 for b, e in pads):
        return _conv2d_shifted(x, w, pads, (dil[0], dil[1]), bias)
    xp = _zero_pad(x, pads)
    cols, out_sizes = _im2col(xp, kernel, strides, dil)
    y = product(w.reshape(c_out, -1), cols.reshape(-1, n * math.prod(out_sizes)))
    return _finish(y.reshape((c_out, n) + out_sizes), n, c_out, out_sizes, bias)


def _depthwise(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, strides: tuple[int, ...], dil: tuple[int, ...], pads: list[tuple[int, int]]
) -> np.ndarray:
    """groups == C_in and one input channel per group: a weighted sum of shifted inputs, no GEMM."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    mult = c_out // c
    xp = _zero_pad(x, pads)
    kernel = w.shape[2:]
    out_sizes = tuple((xp.shape[2 + i] - (k - 1) * d - 1) // s + 1 for i, (k, s, d) in enumerate(zip(kernel, strides, dil)))
    src = np.repeat(xp, mult, axis=1) if mult > 1 else xp  # output channel o reads input channel o // mult
    out = np.zeros((n, c_out) + out_sizes, F32)
    for offsets in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (size - 1) * s + 1, s) for o, d, s, size in zip(offsets, dil, strides, out_sizes)
        )
        out += src[index] * w[(slice(None), 0) + offsets].reshape((c_out,) + (1,) * len(kernel))
    if bias is not None:
        out += np.asarray(bias, F32).reshape((c_out,) + (1,) * len(kernel))
    return out


def conv_flops(op: Operation, inputs: dict[str, Any], outputs: Sequence[np.ndarray]) -> float:
    """2 * output elements * (C_in / groups) * prod(kernel) multiply-adds, plus the bias adds.

    Counted as the direct convolution's, whatever method ran (a Winograd conv does fewer
    multiplications, so its GFLOP/s is an effective rate, comparable with torch's)."""
    weight = inputs["weight"]
    shape = weight.shape if isinstance(weight, winograd.WinogradWeight) else np.asarray(weight).shape
    out = np.asarray(outputs[0])
    flops = 2.0 * out.size * math.prod(shape[1:])
    if inputs.get("bias") is not None:
        flops += out.size
    return flops


def prepare_conv(op: Operation, static: dict[str, Any]) -> dict[str, Any]:
    """At load: a constant 3x3 weight of a conv the Winograd path computes is transformed once."""
    weight = static.get("weight")
    if not isinstance(weight, np.ndarray) or weight.ndim != 4:
        return static
    kernel = weight.shape[2:]
    strides = as_ints(static["strides"]) if static.get("strides") is not None else (1, 1)
    dilations = as_ints(static["dilations"]) if static.get("dilations") is not None else (1, 1)
    groups = as_int(static["groups"]) if static.get("groups") is not None else 1
    if len(kernel) != 2 or not winograd.applies(weight.shape, strides, dilations, groups):
        return static
    tile = winograd.choose_tile(weight.shape, _output_spatial(op))
    return {**static, "weight": winograd.WinogradWeight.pack(weight, tile)}


def _output_spatial(op: Operation | None) -> tuple[int | None, ...] | None:
    """The conv's output height and width as the program types them (None when not static)."""
    if op is None or not op.outputs or len(op.outputs[0].type.shape) != 4:
        return None
    return op.outputs[0].type.shape[2:]


@register("conv", family=FAMILY, flops=conv_flops, prepare=prepare_conv)
def conv(
    op: Operation,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    strides: Any = None,
    pad_type: Any = "valid",
    pad: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """MIL conv (iOS15, iOS17): N-D cross-correlation (1 to 3 spatial dims). x (N, C_in, *D), weight
    (C_out, C_in / groups, *K), optional bias (C_out); strides and dilations default to 1; pad_type
    valid (default) / same / same_lower / custom (pad = [before, after] per dim); groups split the
    channels. Output size floor((D + pad_before + pad_after - (K - 1) * dilation - 1) / stride) + 1."""
    x = np.asarray(x, dtype=F32)
    if isinstance(weight, winograd.WinogradWeight):  # packed at load by prepare_conv
        return _conv_winograd(x, weight, bias, pad_type, pad)
    w = np.asarray(weight, dtype=F32)
    if x.ndim < 3 or w.ndim != x.ndim:
        raise OpExecutionError(f"conv x {list(x.shape)} and weight {list(w.shape)} must both be (N, C, *spatial)")
    kernel = w.shape[2:]
    s, d = _spatial_params(x, kernel, strides, dilations)
    pads = conv_pads(as_str(pad_type), x.shape[2:], kernel, s, d, as_ints(pad) if pad is not None else None)
    g = as_int(groups)
    c = x.shape[1]
    if c % g or w.shape[0] % g or c // g != w.shape[1]:
        raise OpExecutionError(f"conv groups={g}: x has {c} channels, weight {list(w.shape)}")
    b = None if bias is None else np.asarray(bias, F32)
    if g == 1:
        return _conv_one_group(x, w, b, s, d, pads)
    if w.shape[1] == 1 and g == c:
        return _depthwise(x, w, b, s, d, pads)
    cg, og = c // g, w.shape[0] // g
    parts = [
        _conv_one_group(x[:, i * cg : (i + 1) * cg], w[i * og : (i + 1) * og], None if b is None else b[i * og : (i + 1) * og], s, d, pads)
        for i in range(g)
    ]
    return np.concatenate(parts, axis=1)


def _conv_winograd(
    x: np.ndarray, weight: winograd.WinogradWeight, bias: Any, pad_type: Any, pad: Any
) -> np.ndarray:
    if x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise OpExecutionError(f"conv x {list(x.shape)} and weight {list(weight.shape)} must both be (N, C, *spatial)")
    pads = conv_pads(as_str(pad_type), x.shape[2:], (3, 3), (1, 1), (1, 1), as_ints(pad) if pad is not None else None)
    if any(b < 0 or e < 0 for b, e in pads):  # negative custom pads crop first
        x = _zero_pad(x, pads)
        pads = [(0, 0), (0, 0)]
    if x.shape[2] + sum(pads[0]) < 3 or x.shape[3] + sum(pads[1]) < 3:
        raise OpExecutionError(f"conv output would be empty: input {list(x.shape[2:])}, pads {pads}, kernel [3, 3]")
    b = None if bias is None else np.asarray(bias, F32)
    return winograd.conv3x3(np.ascontiguousarray(x), weight, pads, b)


# -- conv_transpose ----------------------------------------------------------------------------------------


def _conv_transpose_one_group(
    x: np.ndarray, w: np.ndarray, strides: tuple[int, ...], dil: tuple[int, ...]
) -> np.ndarray:
    """Full (uncropped) transposed conv: every input pixel scatters weight * value into the output."""
    n, c_in = x.shape[:2]
    c_out = w.shape[1]
    kernel = w.shape[2:]
    in_sizes = x.shape[2:]
    full = tuple((i - 1) * s + (k - 1) * d + 1 for i, k, s, d in zip(in_sizes, kernel, strides, dil))
    # (C_out, *K, C_in) @ (C_in, N * prod(in)) -> contributions of every kernel offset.
    w_t = np.ascontiguousarray(np.moveaxis(w, 0, -1)).reshape(-1, c_in)
    xs = np.ascontiguousarray(np.moveaxis(x, 1, 0)).reshape(c_in, -1)
    y = product(w_t, xs).reshape((c_out,) + tuple(kernel) + (n,) + tuple(in_sizes))
    out = np.zeros((c_out, n) + full, F32)
    for offsets in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (size - 1) * s + 1, s) for o, d, s, size in zip(offsets, dil, strides, in_sizes)
        )
        out[index] += y[(slice(None),) + offsets]
    return out


@register("conv_transpose", family=FAMILY, flops=conv_flops)
def conv_transpose(
    op: Operation,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    pad: Any = None,
    output_shape: Any = None,
    pad_type: Any = "valid",
    strides: Any = None,
    dilations: Any = None,
    groups: Any = 1,
) -> np.ndarray:
    """MIL conv_transpose (iOS15, iOS17): the gradient of conv. x (N, C_in, *D), weight
    (C_in, C_out / groups, *K). Full output size (D - 1) * stride + (K - 1) * dilation + 1, then
    valid keeps it, custom removes pad[before] / pad[after], same keeps D * stride (extra removed
    half before, half after), and output_shape (when given) fixes the final spatial size."""
    x = np.asarray(x, dtype=F32)
    w = np.asarray(weight, dtype=F32)
    kernel = w.shape[2:]
    s, d = _spatial_params(x, kernel, strides, dilations)
    g = as_int(groups)
    c_in = x.shape[1]
    if c_in % g or w.shape[0] != c_in:
        raise OpExecutionError(f"conv_transpose groups={g}: x has {c_in} channels, weight {list(w.shape)}")
    cg = c_in // g
    parts = [_conv_transpose_one_group(x[:, i * cg : (i + 1) * cg], w[i * cg : (i + 1) * cg], s, d) for i in range(g)]
    full = parts[0] if g == 1 else np.concatenate(parts, axis=0)  # (C_out, N, *full)
    full_sizes = full.shape[2:]
    kind = as_str(pad_type)
    if kind == "custom":
        values = as_ints(pad)
        before = [values[2 * i] for i in range(len(kernel))]
        sizes = [f - values[2 * i] - values[2 * i + 1] for i, f in enumerate(full_sizes)]
    elif kind == "same":
        sizes = [i * st for i, st in zip(x.shape[2:], s)]
        before = [(f - o) // 2 for f, o in zip(full_sizes, sizes)]
    elif kind == "valid":
        before, sizes = [0] * len(kernel), list(full_sizes)
    else:
        raise unsupported(f"conv_transpose pad_type {kind!r}; expected valid, same or custom")
    if output_shape is not None:
        shape = as_ints(output_shape)
        sizes = list(shape[2:]) if len(shape) == x.ndim else list(shape[-len(kernel):])
    # Crop (or zero-extend, when output_shape asks for more) the full result.
    need = [b + o for b, o in zip(before, sizes)]
    if any(nd > f for nd, f in zip(need, full_sizes)):
        grown = np.zeros(full.shape[:2] + tuple(max(nd, f) for nd, f in zip(need, full_sizes)), F32)
        grown[(slice(None), slice(None)) + tuple(slice(0, f) for f in full_sizes)] = full
        full = grown
    cropped = full[(slice(None), slice(None)) + tuple(slice(b, b + o) for b, o in zip(before, sizes))]
    c_out = full.shape[0]
    return _finish(cropped, x.shape[0], c_out, tuple(sizes), None if bias is None else np.asarray(bias, F32))


# -- pooling -----------------------------------------------------------------------------------------------


def _pool_windows(
    x: np.ndarray, kernel_sizes: Any, strides: Any, pad_type: Any, pad: Any, ceil_mode: Any, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, C, *out, *K) of the padded input, and a same-shaped mask of real (unpadded) cells."""
    kernel = as_ints(kernel_sizes)
    nd = len(kernel)
    s = as_ints(strides) if strides is not None else (1,) * nd
    pads = conv_pads(as_str(pad_type), x.shape[2:], kernel, s, (1,) * nd, as_ints(pad) if pad is not None else None)
    if as_bool(ceil_mode):
        grown = []
        for size, k, st, (b, e) in zip(x.shape[2:], kernel, s, pads):
            out = math.ceil((size + b + e - k) / st) + 1
            if (out - 1) * st >= size + b:  # the last window must start inside the input or left pad
                out -= 1
            grown.append((b, max(e, (out - 1) * st + k - size - b)))
        pads = grown
    widths = [(0, 0), (0, 0)] + [(b, e) for b, e in pads]
    xp = np.pad(x, widths, constant_values=fill)
    real = np.pad(np.ones(x.shape[2:], np.bool_), [(b, e) for b, e in pads], constant_values=False)
    axes = tuple(range(2, 2 + nd))
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=axes)
    mask = np.lib.stride_tricks.sliding_window_view(real, kernel)
    step = tuple(slice(None, None, st) for st in s)
    return win[(slice(None), slice(None)) + step], mask[step]


@register("max_pool", family=FAMILY)
def max_pool(
    op: Operation, x: np.ndarray, kernel_sizes: Any, strides: Any = None, pad_type: Any = "valid", pad: Any = None,
    ceil_mode: Any = False,
) -> np.ndarray:
    """MIL max_pool (iOS15): max over kernel_sizes windows every strides; padding never wins (-inf)."""
    x = np.asarray(x, dtype=F32)
    win, _ = _pool_windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode, -np.inf)
    nd = len(as_ints(kernel_sizes))
    return np.max(win, axis=tuple(range(-nd, 0)))


@register("avg_pool", family=FAMILY)
def avg_pool(
    op: Operation, x: np.ndarray, kernel_sizes: Any, strides: Any = None, pad_type: Any = "valid", pad: Any = None,
    exclude_padding_from_average: Any = False, ceil_mode: Any = False,
) -> np.ndarray:
    """MIL avg_pool (iOS15): mean over windows; padded cells count as zeros unless
    exclude_padding_from_average, which divides by the number of real cells instead."""
    x = np.asarray(x, dtype=F32)
    win, mask = _pool_windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    nd = len(as_ints(kernel_sizes))
    axes = tuple(range(-nd, 0))
    total = np.sum(win, axis=axes, dtype=F32)
    if as_bool(exclude_padding_from_average):
        count = np.sum(mask, axis=axes).astype(F32)
    else:
        count = F32(math.prod(as_ints(kernel_sizes)))
    return (total / count).astype(F32)


@register("l2_pool", family=FAMILY)
def l2_pool(
    op: Operation, x: np.ndarray, kernel_sizes: Any, strides: Any = None, pad_type: Any = "valid", pad: Any = None,
    ceil_mode: Any = False,
) -> np.ndarray:
    """MIL l2_pool (iOS15): sqrt(sum(x^2)) over windows (padding adds zeros)."""
    x = np.asarray(x, dtype=F32)
    win, _ = _pool_windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    nd = len(as_ints(kernel_sizes))
    return np.sqrt(np.sum(np.square(win), axis=tuple(range(-nd, 0)), dtype=F32))
