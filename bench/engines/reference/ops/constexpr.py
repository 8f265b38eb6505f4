"""Constexpr kernels: compressed weights, decompressed once when the model loads.

Semantics follow coremltools' definitions (`ops/defs/iOS16/constexpr_ops.py`,
`iOS18/compression.py`):
- constexpr_lut_to_dense: palettization. iOS16: `indices` are n-bit values packed LSB first into
  a flat uint8 vector, `lut` is a flat table of 2^n entries, `shape` the output shape. iOS18:
  `indices` is a uintN tensor (held unpacked, one value per byte) with the output shape, `lut`
  is (G_0, .., G_k-1, 2^n, V): one table per block of indices (block size along dim d is
  indices.shape[d] / G_d) and V > 1 for vector palettization, whose V values fill consecutive
  positions along `vector_axis`.
- constexpr_affine_dequantize (iOS16): scale * (quantized_data - zero_point), scale and zero point
  scalars or vectors along `axis`.
- constexpr_blockwise_shift_scale (iOS18): scale[i // b] * (data[i] - offset[i // b]) per dim,
  block size b = data.shape[d] / scale.shape[d].
- constexpr_sparse_to_dense: pruning. iOS16: `mask` is a packed bit vector (LSB first) plus
  `shape`; iOS18: `mask` is a uint1 tensor with the output shape. Set bits take the next
  `nonzero_data` value in row-major order, the rest are zero.
- constexpr_lut_to_sparse / constexpr_sparse_blockwise_shift_scale (iOS18): the same
  decompressions applied to sparse data; they return (mask, nonzero values) for a following
  constexpr_sparse_to_dense.
- constexpr_cast (iOS16, iOS18): fp16 -> fp32.
Integer results (a LUT of int8 entries, say) keep their integer dtype so chains work; float
results are float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import (
    F32,
    as_int,
    as_ints,
    as_str,
    norm_axis,
    unsupported,
)
from bench.engines.reference.ops.registry import register
from bench.errors import ModelFormatError

FAMILY = "constexpr"


def _float_or_int(array: np.ndarray) -> np.ndarray:
    """Float arrays as float32, integer arrays unchanged."""
    return array.astype(F32, copy=False) if array.dtype.kind == "f" else array


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """The first `count` unsigned `nbits`-bit values packed LSB first in a byte vector, as uint8.

    Values are read in groups of gcd-aligned bytes (4-bit: 1 byte = 2 values; 6-bit: 3 bytes =
    4 values) combined into one little-endian word, so memory stays proportional to the output.
    """
    if not 1 <= nbits <= 8:
        raise unsupported(f"{nbits}-bit packed indices")
    data = np.ascontiguousarray(np.asarray(packed).reshape(-1)).view(np.uint8)
    if nbits == 8:
        values = data
    elif nbits == 1:
        values = np.unpackbits(data, bitorder="little")
    else:
        group_bytes = nbits // math.gcd(nbits, 8)
        per_group = 8 // math.gcd(nbits, 8)
        groups = -(-data.size // group_bytes)
        if groups * group_bytes != data.size:
            data = np.concatenate([data, np.zeros(groups * group_bytes - data.size, np.uint8)])
        as_bytes = data.reshape(groups, group_bytes)
        word = np.zeros(groups, np.uint32 if group_bytes <= 4 else np.uint64)
        for i in range(group_bytes):
            word |= as_bytes[:, i].astype(word.dtype) << word.dtype.type(8 * i)
        mask = word.dtype.type((1 << nbits) - 1)
        values = np.empty((groups, per_group), np.uint8)
        for j in range(per_group):
            values[:, j] = (word >> word.dtype.type(nbits * j)) & mask
        values = values.reshape(-1)
    if values.size < count:
        raise ModelFormatError(f"packed data holds {values.size} {nbits}-bit values, {count} needed")
    return values[:count]


def _nbits(entries: int) -> int:
    nbits = round(math.log2(entries)) if entries > 0 else -1
    if entries <= 0 or 2**nbits != entries or nbits > 8:
        raise ModelFormatError(f"a LUT needs 2^n entries (n <= 8), got {entries}")
    return nbits


def lut_to_dense_grouped(indices: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    """iOS18 LUT decompression: per-block tables, optional vector entries (see module doc)."""
    idx = np.asarray(indices)
    lut = np.asarray(lut)
    k = idx.ndim
    if lut.ndim != k + 2:
        raise ModelFormatError(f"lut {list(lut.shape)} must have rank indices rank + 2 = {k + 2} (indices {list(idx.shape)})")
    groups = lut.shape[:k]
    palette, vsize = lut.shape[k], lut.shape[k + 1]
    _nbits(palette)
    if any(d % g for d, g in zip(idx.shape, groups)):
        raise ModelFormatError(f"lut groups {list(groups)} do not divide indices shape {list(idx.shape)}")
    if idx.size and int(idx.max()) >= palette:
        raise ModelFormatError(f"index {int(idx.max())} is outside a {palette}-entry LUT")
    table = lut.reshape(-1, vsize)  # row = group * palette + entry
    if math.prod(groups) == 1:
        flat = idx.astype(np.intp, copy=False)
    else:
        # Flat group number of each index position, built by broadcasting one small ramp per dim.
        gid = np.zeros((1,) * k, np.int64)
        stride = 1
        for d in reversed(range(k)):
            ramp = (np.arange(idx.shape[d]) // (idx.shape[d] // groups[d])).reshape((-1,) + (1,) * (k - 1 - d))
            gid = gid + ramp * stride
            stride *= groups[d]
        flat = gid * palette + idx
    values = table[flat]  # indices.shape + (V,)
    if vsize == 1:
        return values.reshape(idx.shape)
    if vector_axis is None:
        raise ModelFormatError(f"vector palettization (V = {vsize}) needs vector_axis")
    axis = norm_axis(vector_axis, k, "vector_axis")
    out_shape = list(idx.shape)
    out_shape[axis] *= vsize
    return np.moveaxis(values, -1, axis + 1).reshape(out_shape)


@register("constexpr_lut_to_dense", family=FAMILY)
def constexpr_lut_to_dense(
    op: Operation, indices: np.ndarray, lut: np.ndarray, shape: Any = None, vector_axis: Any = None
) -> np.ndarray:
    """MIL constexpr_lut_to_dense. iOS16 (with `shape`): lut[unpack(indices)] reshaped to shape, the
    n = log2(len(lut)) bit indices packed LSB first. iOS18 (no `shape`): per-block tables
    lut[g(i), indices[i], :], V > 1 values laid along vector_axis."""
    lut = np.asarray(lut)
    if shape is not None:
        out_shape = as_ints(shape)
        table = lut.reshape(-1)
        idx = unpack_bits(indices, _nbits(table.size), math.prod(out_shape))
        return _float_or_int(table[idx].reshape(out_shape))
    axis = None if vector_axis is None else as_int(vector_axis)
    return _float_or_int(lut_to_dense_grouped(indices, lut, axis))


def _expand_along(param: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or vector parameter shaped to broadcast along `axis` of a rank-`rank` tensor."""
    p = np.asarray(param)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * rank
    shape[axis] = p.size
    return p.reshape(shape)


@register("constexpr_affine_dequantize", family=FAMILY)
def constexpr_affine_dequantize(
    op: Operation, quantized_data: np.ndarray, zero_point: Any, scale: Any, axis: Any
) -> np.ndarray:
    """MIL constexpr_affine_dequantize (iOS16): scale * (quantized_data - zero_point), with scale and
    zero_point scalars or vectors along axis; computed in float32."""
    q = np.asarray(quantized_data)
    a = norm_axis(as_int(axis), q.ndim)
    zp = _expand_along(np.asarray(zero_point).astype(F32), q.ndim, a)
    sc = _expand_along(np.asarray(scale).astype(F32), q.ndim, a)
    out = q.astype(F32)
    out -= zp
    out *= sc
    return out


def blockwise_shift_scale(data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """scale[i // b] * (data[i] - offset[i // b]) per dim, without materialising repeated scales."""
    data = np.asarray(data)
    scale = np.asarray(scale, F32)
    if scale.ndim != data.ndim:
        raise ModelFormatError(f"scale {list(scale.shape)} must have the rank of data {list(data.shape)}")
    if any(d % s for d, s in zip(data.shape, scale.shape)):
        raise ModelFormatError(f"scale {list(scale.shape)} blocks do not divide data {list(data.shape)}")
    blocks = [d // s for d, s in zip(data.shape, scale.shape)]
    split = tuple(v for s, b in zip(scale.shape, blocks) for v in (s, b))  # (S0, b0, S1, b1, ..)
    param = tuple(v for s in scale.shape for v in (s, 1))
    out = data.astype(F32).reshape(split)
    if offset is not None:
        off = np.asarray(offset)
        if off.shape != scale.shape:
            raise ModelFormatError(f"offset {list(off.shape)} must have the shape of scale {list(scale.shape)}")
        out -= off.astype(F32).reshape(param)
    out *= scale.reshape(param)
    return out.reshape(data.shape)


@register("constexpr_blockwise_shift_scale", family=FAMILY)
def constexpr_blockwise_shift_scale(op: Operation, data: np.ndarray, scale: np.ndarray, offset: Any = None) -> np.ndarray:
    """MIL constexpr_blockwise_shift_scale (iOS18): scale[i//b] * (data[i] - offset[i//b]) per dim,
    block size b = data.shape[d] / scale.shape[d]; offset (same shape as scale) optional."""
    return blockwise_shift_scale(data, scale, offset)


def sparse_to_dense(nonzero_data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zeros of mask's shape with nonzero_data written, in row-major order, where mask is set."""
    values = np.asarray(nonzero_data).reshape(-1)
    keep = np.asarray(mask) != 0
    count = int(np.count_nonzero(keep))
    if count != values.size:
        raise ModelFormatError(f"mask has {count} set bits but nonzero_data holds {values.size} values")
    out = np.zeros(keep.shape, dtype=values.dtype)
    out[keep] = values
    return out


@register("constexpr_sparse_to_dense", family=FAMILY)
def constexpr_sparse_to_dense(op: Operation, nonzero_data: np.ndarray, mask: np.ndarray, shape: Any = None) -> np.ndarray:
    """MIL constexpr_sparse_to_dense. iOS16 (with `shape`): mask is a bit vector packed LSB first,
    one bit per output element. iOS18: mask is a uint1 tensor of the output shape. Set bits take
    the next nonzero_data value (row-major), others are 0."""
    if shape is not None:
        out_shape = as_ints(shape)
        bits = unpack_bits(mask, 1, math.prod(out_shape)).reshape(out_shape)
        return _float_or_int(sparse_to_dense(nonzero_data, bits))
    return _float_or_int(sparse_to_dense(nonzero_data, mask))


@register("constexpr_lut_to_sparse", family=FAMILY)
def constexpr_lut_to_sparse(
    op: Operation, indices_mask: np.ndarray, indices_nonzero_data: np.ndarray, lut: np.ndarray, vector_axis: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """MIL constexpr_lut_to_sparse (iOS18): palettization of sparse data. Returns (mask, values): the
    mask (repeated V times along vector_axis for vector LUTs) and the LUT values of the set
    positions in row-major order, ready for constexpr_sparse_to_dense."""
    mask = np.asarray(indices_mask)
    dense_idx = sparse_to_dense(indices_nonzero_data, mask)
    axis = None if vector_axis is None else as_int(vector_axis)
    dense = lut_to_dense_grouped(dense_idx, lut, axis)
    vsize = np.asarray(lut).shape[-1]
    out_mask = mask if vsize == 1 else np.repeat(mask, vsize, axis=norm_axis(axis if axis is not None else 0, mask.ndim))
    out_mask = (out_mask != 0).astype(np.uint8)
    return out_mask, _float_or_int(dense[out_mask != 0])


@register("constexpr_sparse_blockwise_shift_scale", family=FAMILY)
def constexpr_sparse_blockwise_shift_scale(
    op: Operation, data_mask: np.ndarray, nonzero_data: np.ndarray, scale: np.ndarray, offset: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """MIL constexpr_sparse_blockwise_shift_scale (iOS18): blockwise dequantization of sparse data.
    Returns (mask, dequantized values of the set positions in row-major order)."""
    mask = (np.asarray(data_mask) != 0).astype(np.uint8)
    dense = sparse_to_dense(nonzero_data, mask)
    values = blockwise_shift_scale(dense, scale, offset)
    return mask, values[mask != 0]


@register("constexpr_cast", family=FAMILY)
def constexpr_cast(op: Operation, source_val: np.ndarray, output_dtype: Any) -> np.ndarray:
    """MIL constexpr_cast (iOS16, iOS18): fp16 source_val cast to output_dtype (only fp32 exists)."""
    name = as_str(output_dtype)
    if name not in ("fp32", "fp16"):
        raise unsupported(f"constexpr_cast to {name!r}")
    return np.asarray(source_val).astype(F32)
