"""Resampling kernels (family "shape": they only move and blend values along the last two axes):
upsample_nearest_neighbor, resize_nearest_neighbor, upsample_bilinear, resize_bilinear.

Semantics follow coremltools' MIL definitions (`ops/defs/iOS15/image_resizing.py`, iOS16
`upsample_bilinear.half_pixel_centers`); the sampling-grid formulas are the ones its docstrings give.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import (
    F32,
    as_bool,
    as_float,
    as_int,
    as_str,
    size_flops,
    unsupported,
)
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "shape"


def _check_rank(x: np.ndarray, op_type: str) -> None:
    if x.ndim < 3:
        raise OpExecutionError(f"{op_type} needs an input of rank >= 3, got {list(x.shape)}")


def _nearest(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return x[..., rows[:, None], cols[None, :]]


def _integer_upsample(x: np.ndarray, sh: int, sw: int) -> np.ndarray:
    """Nearest-neighbour upsampling by whole factors: one broadcast copy, no index arrays."""
    h, w = x.shape[-2:]
    out = np.empty(x.shape[:-2] + (h, sh, w, sw), dtype=x.dtype)
    out[...] = x[..., :, None, :, None]
    return out.reshape(x.shape[:-2] + (h * sh, w * sw))


@register("upsample_nearest_neighbor", family=FAMILY, flops=size_flops)
def upsample_nearest_neighbor(
    op: Operation, x: np.ndarray, scale_factor_height: Any = 1, scale_factor_width: Any = 1
) -> np.ndarray:
    """MIL upsample_nearest_neighbor (iOS15): output (.., floor(H * sh), floor(W * sw)); output row i
    reads input row floor(i / sh) (likewise columns); integer or fractional factors."""
    x = np.asarray(x)
    _check_rank(x, "upsample_nearest_neighbor")
    sh, sw = as_float(scale_factor_height), as_float(scale_factor_width)
    if sh <= 0 or sw <= 0:
        raise OpExecutionError(f"upsample scale factors must be > 0, got {sh}, {sw}")
    if sh.is_integer() and sw.is_integer():
        return _integer_upsample(x, int(sh), int(sw))
    h, w = x.shape[-2:]
    ho, wo = math.floor(h * sh), math.floor(w * sw)
    rows = np.minimum(np.floor(np.arange(ho) / sh).astype(np.int64), h - 1)
    cols = np.minimum(np.floor(np.arange(wo) / sw).astype(np.int64), w - 1)
    return _nearest(x, rows, cols)


@register("resize_nearest_neighbor", family=FAMILY, flops=size_flops)
def resize_nearest_neighbor(op: Operation, x: np.ndarray, target_size_height: Any, target_size_width: Any) -> np.ndarray:
    """MIL resize_nearest_neighbor (iOS15): output (.., Ht, Wt); output row i reads input row
    floor(i * H / Ht) (likewise columns)."""
    x = np.asarray(x)
    _check_rank(x, "resize_nearest_neighbor")
    h, w = x.shape[-2:]
    ho, wo = as_int(target_size_height), as_int(target_size_width)
    if ho == h * (ho // h) and wo == w * (wo // w) and ho >= h and wo >= w:
        return _integer_upsample(x, ho // h, wo // w)
    rows = np.minimum(np.arange(ho) * h // ho, h - 1)
    cols = np.minimum(np.arange(wo) * w // wo, w - 1)
    return _nearest(x, rows, cols)


def _grid(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Sampling positions (input coordinates) of the n_out outputs, per MIL's sampling modes."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = np.array([(n_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode == "DEFAULT":
        g = i * ((n_in - n_in / n_out) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = n_in / n_out
        g = i * spacing + 0.5 * spacing - 0.5
    elif mode == "LEGACY":  # upsample_bilinear, align_corners=False and half_pixel_centers=False
        g = i * (n_in / n_out)
    else:
        raise unsupported(f"bilinear sampling_mode {mode!r}")
    return np.clip(g, 0, n_in - 1)


def _lerp_axis(x: np.ndarray, grid: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of x along axis at fractional positions grid."""
    n = x.shape[axis]
    lo = np.floor(grid).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (grid - lo).astype(F32)
    shape = [1] * x.ndim
    shape[axis] = grid.size
    frac = frac.reshape(shape)
    a = np.take(x, lo, axis=axis)
    b = np.take(x, hi, axis=axis)
    b -= a
    b *= frac
    a += b
    return a


def _bilinear(x: np.ndarray, ho: int, wo: int, mode: str) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    h, w = x.shape[-2:]
    y = _lerp_axis(x, _grid(h, ho, mode), x.ndim - 2)
    return _lerp_axis(y, _grid(w, wo, mode), x.ndim - 1)


@register("upsample_bilinear", family=FAMILY, flops=size_flops)
def upsample_bilinear(
    op: Operation,
    x: np.ndarray,
    scale_factor_height: Any = 1,
    scale_factor_width: Any = 1,
    align_corners: Any = True,
    half_pixel_centers: Any = None,
) -> np.ndarray:
    """MIL upsample_bilinear (iOS15; iOS16 half_pixel_centers): output (.., floor(H sh), floor(W sw)),
    scale recomputed from the sizes. align_corners (default True) samples i (Hin-1)/(Hout-1);
    otherwise half_pixel_centers (default: not align_corners) samples (i + 0.5) Hin/Hout - 0.5, and
    without it i Hin/Hout; positions clamp to [0, Hin-1]."""
    x = np.asarray(x)
    _check_rank(x, "upsample_bilinear")
    h, w = x.shape[-2:]
    ho, wo = math.floor(h * as_float(scale_factor_height)), math.floor(w * as_float(scale_factor_width))
    aligned = as_bool(align_corners)
    half = (not aligned) if half_pixel_centers is None else as_bool(half_pixel_centers)
    if aligned:
        mode = "STRICT_ALIGN_CORNERS"
    else:
        mode = "UNALIGN_CORNERS" if half else "LEGACY"
    return _bilinear(x, ho, wo, mode)


@register("resize_bilinear", family=FAMILY, flops=size_flops)
def resize_bilinear(
    op: Operation, x: np.ndarray, target_size_height: Any = 1, target_size_width: Any = 1, sampling_mode: Any = "DEFAULT"
) -> np.ndarray:
    """MIL resize_bilinear (iOS15): bilinear resize of the last two dims to the target size; sampling
    modes STRICT_ALIGN_CORNERS, ALIGN_CORNERS, DEFAULT (default), OFFSET_CORNERS, UNALIGN_CORNERS as
    MIL's docstring defines their grids."""
    x = np.asarray(x)
    _check_rank(x, "resize_bilinear")
    return _bilinear(x, as_int(target_size_height), as_int(target_size_width), as_str(sampling_mode))


@register("resize", family=FAMILY, flops=size_flops)
def resize(
    op: Operation,
    x: np.ndarray,
    shape: Any,
    resized_dims: Any,
    interpolation_mode: Any = "LINEAR",
    sampling_mode: Any = "DEFAULT",
) -> np.ndarray:
    """MIL resize (iOS17): resize the last `resized_dims` (1 or 2) dims of x to the last entries of
    `shape` (0 keeps x's size, matched from the right). LINEAR interpolates on the sampling_mode
    grid (as resize_bilinear); NEAREST_NEIGHBOR takes input index floor(i * in / out) for DEFAULT
    (whose grid is exactly i * in / out) and the nearest grid point otherwise."""
    x = np.asarray(x)
    n = as_int(resized_dims)
    target = [int(v) for v in np.asarray(shape).reshape(-1)]
    if not 1 <= n <= 2 or n > x.ndim or n > len(target):
        raise unsupported(f"resize of {n} trailing dims (shape {target}, x rank {x.ndim}); 1 or 2 supported")
    sizes = [t if t != 0 else x.shape[x.ndim - len(target) + i] for i, t in enumerate(target)][-n:]
    interpolation, mode = as_str(interpolation_mode), as_str(sampling_mode)
    axes = list(range(x.ndim - n, x.ndim))
    if interpolation == "LINEAR":
        y = np.asarray(x, dtype=F32)
        for axis, size in zip(axes, sizes):
            y = _lerp_axis(y, _grid(y.shape[axis], size, mode), axis)
        return y
    if interpolation == "NEAREST_NEIGHBOR":
        y = x
        for axis, size in zip(axes, sizes):
            n_in = y.shape[axis]
            if mode == "DEFAULT":
                index = np.minimum(np.arange(size) * n_in // size, n_in - 1)
            else:
                index = np.minimum(np.floor(_grid(n_in, size, mode) + 0.5).astype(np.int64), n_in - 1)
            y = np.take(y, index, axis=axis)
        return y
    raise unsupported(f"resize interpolation_mode {interpolation!r}; expected LINEAR or NEAREST_NEIGHBOR")
