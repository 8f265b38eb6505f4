"""Shape and indexing kernels: reshape, transpose, slicing, concat / split, gather / scatter, pad, ...

Semantics follow coremltools' MIL op definitions (`ops/defs/iOS15/tensor_transformation.py`,
`tensor_operation.py`, `scatter_gather.py` and the iOS16 / iOS17 / iOS18 revisions). Kernels return
numpy views where the op only moves data (reshape, transpose, slices): nothing downstream writes
into its inputs, so a view is safe and saves a copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.engines.reference.ops._util import (
    F32,
    as_bool,
    as_bools,
    as_int,
    as_ints,
    as_str,
    f32,
    norm_axes,
    norm_axis,
    unsupported,
)
from bench.engines.reference.ops.registry import register
from bench.errors import OpExecutionError

FAMILY = "shape"


@register("identity", family=FAMILY)
def identity(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL identity (iOS15): returns x unchanged."""
    return x


@register("reshape", family=FAMILY)
def reshape(op: Operation, x: np.ndarray, shape: Any) -> np.ndarray:
    """MIL reshape (iOS15, iOS17): `-1` is inferred; `0` copies the matching input dimension, matched
    from the right (iOS17 rule; identical to iOS15's when len(shape) == rank, the only case iOS15
    allows), and a `0` with no matching dimension becomes 1."""
    x = np.asarray(x)
    target = list(as_ints(shape))
    rank, k = x.ndim, len(target)
    for i, d in enumerate(target):
        if d == 0:
            j = rank - (k - i)
            target[i] = x.shape[j] if j >= 0 else 1
    if target.count(-1) > 1:
        raise OpExecutionError(f"reshape shape {list(as_ints(shape))} has more than one -1")
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if known == 0 or x.size % known:
            raise OpExecutionError(f"cannot reshape {list(x.shape)} to {list(as_ints(shape))}")
        target[target.index(-1)] = x.size // known
    if math.prod(target) != x.size:
        raise OpExecutionError(f"cannot reshape {list(x.shape)} ({x.size} elements) to {target}")
    return x.reshape(target)


@register("reshape_like", family=FAMILY)
def reshape_like(
    op: Operation, x: np.ndarray, ref_tensors: Sequence[np.ndarray], begins: Any, ends: Any, end_masks: Any
) -> np.ndarray:
    """MIL reshape_like (iOS16, iOS17): reshape x to the concatenation of ref_tensors[i].shape[begins[i]:ends[i]]
    (to the end when end_masks[i])."""
    b, e = as_ints(begins), as_ints(ends)
    masks = as_bools(end_masks, len(b))
    target: list[int] = []
    for ref, start, stop, to_end in zip(ref_tensors, b, e, masks):
        dims = np.shape(ref)
        target.extend(dims[start:] if to_end else dims[start:stop])
    x = np.asarray(x)
    if math.prod(target) != x.size:
        raise OpExecutionError(f"reshape_like target {target} does not hold the {x.size} elements of x")
    return x.reshape(target)


@register("flatten2d", family=FAMILY)
def flatten2d(op: Operation, x: np.ndarray, axis: Any = 1) -> np.ndarray:
    """MIL flatten2d (iOS15): reshape to (prod(shape[:axis]), prod(shape[axis:])); axis may be negative."""
    x = np.asarray(x)
    a = as_int(axis)
    a = a + x.ndim if a < 0 else a
    return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))


@register("transpose", family=FAMILY)
def transpose(op: Operation, x: np.ndarray, perm: Any) -> np.ndarray:
    """MIL transpose (iOS15, iOS17): permute axes; output axis i is input axis perm[i] (negatives allowed)."""
    x = np.asarray(x)
    order = as_ints(perm)
    if min(order, default=0) < 0:
        order = norm_axes(order, x.ndim, "perm")
    return x.transpose(order)


@register("expand_dims", family=FAMILY)
def expand_dims(op: Operation, x: np.ndarray, axes: Any) -> np.ndarray:
    """MIL expand_dims (iOS15, iOS17): insert size-1 dims; axes index the output (rank + len(axes)),
    negatives counted from its end."""
    x = np.asarray(x)
    new = as_ints(axes)
    out_rank = x.ndim + len(new)
    inserted = {a + out_rank if a < 0 else a for a in new}
    if len(inserted) != len(new) or not all(0 <= a < out_rank for a in inserted):
        raise OpExecutionError(f"expand_dims axes {list(new)} are invalid for a rank-{x.ndim} input")
    dims = iter(x.shape)
    # a reshape (a view) is several times cheaper than np.expand_dims' axis bookkeeping
    return x.reshape([1 if i in inserted else next(dims) for i in range(out_rank)])


@register("squeeze", family=FAMILY)
def squeeze(op: Operation, x: np.ndarray, axes: Any = None) -> np.ndarray:
    """MIL squeeze (iOS15, iOS17): drop the given size-1 axes, or every size-1 axis if axes is omitted."""
    x = np.asarray(x)
    if axes is None:
        return np.squeeze(x)
    dims = norm_axes(axes, x.ndim)
    for d in dims:
        if x.shape[d] != 1:
            raise OpExecutionError(f"squeeze axis {d} has size {x.shape[d]}, not 1")
    return np.squeeze(x, axis=dims)


@register("slice_by_index", family=FAMILY)
def slice_by_index(
    op: Operation,
    x: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    """MIL slice_by_index (iOS15, iOS17): x[begin[i]:end[i]:stride[i], ...] numpy-style.
    begin_mask[i] ignores begin[i] (start of the axis), end_mask[i] ignores end[i] (end of the
    axis), squeeze_mask[i] picks the single element begin[i] and drops the axis."""
    x = np.asarray(x)
    rank = x.ndim
    b, e = as_ints(begin), as_ints(end)
    s = as_ints(stride) if stride is not None else (1,) * rank
    bm, em, sm = as_bools(begin_mask, rank), as_bools(end_mask, rank), as_bools(squeeze_mask, rank)
    if not len(b) == len(e) == len(s) == rank:
        raise OpExecutionError(f"slice_by_index begin/end/stride must have {rank} entries, got {len(b)}/{len(e)}/{len(s)}")
    index: list[Any] = []
    for i in range(rank):
        if sm[i]:
            position = b[i] + x.shape[i] if b[i] < 0 else b[i]
            if not 0 <= position < x.shape[i]:
                raise OpExecutionError(f"slice_by_index squeezes axis {i} at {b[i]}, out of range for size {x.shape[i]}")
            index.append(position)
        else:
            if s[i] == 0:
                raise OpExecutionError(f"slice_by_index stride on axis {i} is 0")
            index.append(slice(None if bm[i] else b[i], None if em[i] else e[i], s[i]))
    return x[tuple(index)]


@register("slice_by_size", family=FAMILY)
def slice_by_size(op: Operation, x: np.ndarray, begin: Any, size: Any) -> np.ndarray:
    """MIL slice_by_size (iOS15, iOS17): x[begin[i] : begin[i] + size[i]]; size -1 takes the rest.
    Negative begin counts from the end of the axis."""
    x = np.asarray(x)
    index = []
    for i, (b, n) in enumerate(zip(as_ints(begin), as_ints(size))):
        b = b + x.shape[i] if b < 0 else b
        stop = x.shape[i] if n == -1 else b + n
        if b < 0 or stop > x.shape[i] or stop < b:
            raise OpExecutionError(f"slice_by_size axis {i}: begin {b}, size {n} out of range for size {x.shape[i]}")
        index.append(slice(b, stop))
    return x[tuple(index)]


@register("slice_update", family=FAMILY)
def slice_update(
    op: Operation,
    x: np.ndarray,
    update: np.ndarray,
    begin: Any,
    end: Any,
    stride: Any = None,
    begin_mask: Any = None,
    end_mask: Any = None,
    squeeze_mask: Any = None,
) -> np.ndarray:
    """MIL slice_update (iOS18): a copy of x whose slice_by_index region (same parameters) is replaced by update."""
    x = np.asarray(x)
    out = np.array(x, copy=True)
    rank = x.ndim
    b, e = as_ints(begin), as_ints(end)
    s = as_ints(stride) if stride is not None else (1,) * rank
    bm, em, sm = as_bools(begin_mask, rank), as_bools(end_mask, rank), as_bools(squeeze_mask, rank)
    index: list[Any] = []
    for i in range(rank):
        if sm[i]:
            index.append(b[i] + x.shape[i] if b[i] < 0 else b[i])
        else:
            index.append(slice(None if bm[i] else b[i], None if em[i] else e[i], s[i]))
    region = out[tuple(index)]
    update = np.asarray(update)
    if region.shape != update.shape:
        raise OpExecutionError(f"slice_update region has shape {list(region.shape)}, update has {list(update.shape)}")
    out[tuple(index)] = update
    return out


@register("crop", family=FAMILY)
def crop(op: Operation, x: np.ndarray, crop_height: Any, crop_width: Any) -> np.ndarray:
    """MIL crop (iOS15): remove crop_height[0] / [1] rows from the top / bottom and crop_width[0] / [1]
    columns from the left / right of the last two dims."""
    x = np.asarray(x)
    top, bottom = as_ints(crop_height)
    left, right = as_ints(crop_width)
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


@register("split", family=FAMILY)
def split(
    op: Operation, x: np.ndarray, axis: Any, num_splits: Any = None, split_sizes: Any = None
) -> tuple[np.ndarray, ...]:
    """MIL split (iOS15): cut x along axis into split_sizes pieces, or num_splits equal pieces."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    if split_sizes is not None:
        sizes = list(as_ints(split_sizes))
        if sum(sizes) != x.shape[a]:
            raise OpExecutionError(f"split sizes {sizes} do not add up to axis {a} size {x.shape[a]}")
    elif num_splits is not None:
        n = as_int(num_splits)
        if n <= 0 or x.shape[a] % n:
            raise OpExecutionError(f"cannot split axis {a} of size {x.shape[a]} into {n} equal parts")
        sizes = [x.shape[a] // n] * n
    else:
        raise OpExecutionError("split needs num_splits or split_sizes")
    cuts = np.cumsum(sizes[:-1]).tolist()
    return tuple(np.split(x, cuts, axis=a))


@register("concat", family=FAMILY)
def concat(op: Operation, values: Sequence[np.ndarray], axis: Any, interleave: Any = False) -> np.ndarray:
    """MIL concat (iOS15): join values along axis. With interleave, the inputs (same shape) alternate
    along axis: out[.., i*N + k, ..] = values[k][.., i, ..]."""
    arrays = [np.asarray(v) for v in values]
    rank = arrays[0].ndim
    a = norm_axis(as_int(axis), rank)
    if as_bool(interleave) and len(arrays) > 1:
        stacked = np.stack(arrays, axis=a + 1)
        shape = list(arrays[0].shape)
        shape[a] *= len(arrays)
        return f32(stacked.reshape(shape))
    if len(arrays) == 1:
        return arrays[0]
    return f32(np.concatenate(arrays, axis=a))


@register("stack", family=FAMILY)
def stack(op: Operation, values: Sequence[np.ndarray], axis: Any) -> np.ndarray:
    """MIL stack (iOS15): join same-shaped values along a new axis (an axis of the output)."""
    arrays = [np.asarray(v) for v in values]
    a = norm_axis(as_int(axis), arrays[0].ndim + 1)
    return f32(np.stack(arrays, axis=a))


@register("tile", family=FAMILY)
def tile(op: Operation, x: np.ndarray, reps: Any) -> np.ndarray:
    """MIL tile (iOS15): repeat x reps[i] times along each axis (len(reps) == rank)."""
    return np.tile(x, as_ints(reps))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@register("pad", family=FAMILY)
def pad(op: Operation, x: np.ndarray, pad: Any, mode: Any = "constant", constant_val: Any = 0.0) -> np.ndarray:
    """MIL pad (iOS15): pad[2i], pad[2i+1] elements before / after each of the last len(pad)/2 axes.
    Modes: constant (constant_val), reflect (mirror without the edge), replicate (repeat the edge)."""
    x = np.asarray(x)
    amounts = as_ints(pad)
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise OpExecutionError(f"pad has {len(amounts)} entries; expected an even count <= {2 * x.ndim}")
    n = len(amounts) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(amounts[2 * i], amounts[2 * i + 1]) for i in range(n)]
    name = as_str(mode)
    if name not in _PAD_MODES:
        raise unsupported(f"pad mode {name!r}; expected one of {', '.join(_PAD_MODES)}")
    if any(b < 0 or e < 0 for b, e in widths):
        # Negative padding crops (the torch frontend emits it for negative F.pad amounts).
        x = x[tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))]
        widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if name == "constant":
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(constant_val, dtype=x.dtype))
    return np.pad(x, widths, mode=_PAD_MODES[name])


@register("shape", family=FAMILY)
def shape(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL shape (iOS15): the shape of x as int32 (a 0-length vector for a scalar)."""
    return np.asarray(np.shape(x), dtype=np.int32)


def _fill_dtype(op: Operation, value: Any) -> np.dtype:
    v = np.asarray(value)
    if v.dtype.kind == "f":
        return np.dtype(F32)
    return v.dtype


@register("fill", family=FAMILY)
def fill(op: Operation, shape: Any, value: Any = 0.0) -> np.ndarray:
    """MIL fill (iOS15): a tensor of the given shape filled with value (value's dtype, default 0.0)."""
    return np.full(as_ints(shape), value, dtype=_fill_dtype(op, value))


@register("fill_like", family=FAMILY)
def fill_like(op: Operation, ref_tensor: np.ndarray, value: Any = 0.0) -> np.ndarray:
    """MIL fill_like (iOS16): a tensor shaped like ref_tensor filled with value (default 0.0)."""
    return np.full(np.shape(ref_tensor), value, dtype=_fill_dtype(op, value))


@register("range_1d", family=FAMILY)
def range_1d(op: Operation, end: Any, start: Any, step: Any) -> np.ndarray:
    """MIL range_1d (iOS15): [start, start + step, ...) up to but excluding end (int32 or fp32)."""
    s, e, d = np.asarray(start), np.asarray(end), np.asarray(step)
    if all(v.dtype.kind in "iu" for v in (s, e, d)):
        return np.arange(int(s), int(e), int(d), dtype=np.int32)
    return np.arange(float(s), float(e), float(d)).astype(F32)


@register("band_part", family=FAMILY)
def band_part(op: Operation, x: np.ndarray, lower: Any = -1, upper: Any = -1) -> np.ndarray:
    """MIL band_part (iOS15): keep x[.., m, n] where (lower < 0 or m - n <= lower) and
    (upper < 0 or n - m <= upper), zero elsewhere (last two dims)."""
    x = np.asarray(x)
    lo, up = as_int(lower), as_int(upper)
    m = np.arange(x.shape[-2])[:, None]
    n = np.arange(x.shape[-1])[None, :]
    keep = np.ones((x.shape[-2], x.shape[-1]), dtype=np.bool_)
    if lo >= 0:
        keep &= m - n <= lo
    if up >= 0:
        keep &= n - m <= up
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@register("reverse", family=FAMILY)
def reverse(op: Operation, x: np.ndarray, axes: Any = None) -> np.ndarray:
    """MIL reverse (iOS15, iOS17): reverse the order of elements along axes (all axes if omitted)."""
    x = np.asarray(x)
    return np.flip(x) if axes is None else np.flip(x, axis=norm_axes(axes, x.ndim))


@register("reverse_sequence", family=FAMILY)
def reverse_sequence(op: Operation, x: np.ndarray, lengths: Any, seq_axis: Any = 0, batch_axis: Any = 0) -> np.ndarray:
    """MIL reverse_sequence (iOS15, iOS17): for each batch b, reverse the first lengths[b] elements along seq_axis."""
    x = np.asarray(x)
    s, b = norm_axis(as_int(seq_axis), x.ndim), norm_axis(as_int(batch_axis), x.ndim)
    out = np.array(x, copy=True)
    for i, n in enumerate(as_ints(lengths)):
        src = [slice(None)] * x.ndim
        src[b] = i
        src[s] = slice(0, n)
        dst_view = out[tuple(src)]
        axis = s - (1 if b < s else 0)
        dst_view[...] = np.flip(x[tuple(src)], axis=axis)
    return out


@register("depth_to_space", family=FAMILY)
def depth_to_space(op: Operation, x: np.ndarray, block_size: Any) -> np.ndarray:
    """MIL depth_to_space (iOS15): (n, C, H, W) -> (n, C/b^2, H b, W b), channels read depth-column-row
    (TensorFlow's DCR order): out[n, c, h b + i, w b + j] = x[n, (i b + j) C/b^2 + c, h, w]."""
    x = np.asarray(x)
    bs = as_int(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (bs * bs), h * bs, w * bs)


@register("space_to_depth", family=FAMILY)
def space_to_depth(op: Operation, x: np.ndarray, block_size: Any) -> np.ndarray:
    """MIL space_to_depth (iOS15): the inverse of depth_to_space: (n, C, H, W) -> (n, C b^2, H/b, W/b)."""
    x = np.asarray(x)
    bs = as_int(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // bs, bs, w // bs, bs).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * bs * bs, h // bs, w // bs)


@register("pixel_shuffle", family=FAMILY)
def pixel_shuffle(op: Operation, x: np.ndarray, upscale_factor: Any) -> np.ndarray:
    """MIL pixel_shuffle (iOS15): torch PixelShuffle: out[n, c, h f + i, w f + j] = x[n, c f^2 + i f + j, h, w]."""
    x = np.asarray(x)
    f = as_int(upscale_factor)
    n, c, h, w = x.shape
    y = x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (f * f), h * f, w * f)


@register("pixel_unshuffle", family=FAMILY)
def pixel_unshuffle(op: Operation, x: np.ndarray, downscale_factor: Any) -> np.ndarray:
    """MIL pixel_unshuffle (iOS16): torch PixelUnshuffle, the inverse of pixel_shuffle."""
    x = np.asarray(x)
    f = as_int(downscale_factor)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // f, f, w // f, f).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * f * f, h // f, w // f)


@register("sliding_windows", family=FAMILY)
def sliding_windows(op: Operation, x: np.ndarray, axis: Any, size: Any, stride: Any = 1) -> np.ndarray:
    """MIL sliding_windows (iOS15): windows of `size` along axis every `stride` elements; the output
    replaces that axis with (num_windows, size)."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    k, s = as_int(size), as_int(stride)
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=a)  # window dim appended last
    windows = np.moveaxis(windows, -1, a + 1)
    index = [slice(None)] * windows.ndim
    index[a] = slice(None, None, s)
    return np.ascontiguousarray(windows[tuple(index)])


@register("non_zero", family=FAMILY)
def non_zero(op: Operation, x: np.ndarray) -> np.ndarray:
    """MIL non_zero (iOS15): the (N, rank) int32 coordinates of the non-zero elements, row-major order."""
    return np.argwhere(np.asarray(x)).astype(np.int32)


@register("one_hot", family=FAMILY)
def one_hot(
    op: Operation, indices: np.ndarray, one_hot_vector_size: Any, axis: Any = -1, on_value: Any = 1, off_value: Any = 0
) -> np.ndarray:
    """MIL one_hot (iOS15): a new axis (at `axis` of the output) of length one_hot_vector_size holding
    on_value at the index and off_value elsewhere; the output dtype follows on_value."""
    idx = np.asarray(indices)
    depth = as_int(one_hot_vector_size)
    a = norm_axis(as_int(axis), idx.ndim + 1)
    on, off = np.asarray(on_value), np.asarray(off_value)
    dtype = F32 if on.dtype.kind == "f" else on.dtype
    hot = np.expand_dims(idx, a) == np.arange(depth).reshape((depth,) + (1,) * (idx.ndim - a))
    return np.where(hot, on.astype(dtype), off.astype(dtype))


# -- gather / scatter --------------------------------------------------------------------------------------


def _wrap_indices(indices: np.ndarray, size: int, what: str) -> np.ndarray:
    """Indices with negatives counted from the end (iOS15/16 allow them); out of range is an error."""
    idx = np.asarray(indices).astype(np.int64, copy=False)
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise OpExecutionError(f"{what} indices must lie in [{-size}, {size - 1}], got [{idx.min()}, {idx.max()}]")
    return np.where(idx < 0, idx + size, idx)


@register("gather", family=FAMILY)
def gather(
    op: Operation, x: np.ndarray, indices: Any, axis: Any = 0, batch_dims: Any = 0, validate_indices: Any = False
) -> np.ndarray:
    """MIL gather (iOS15, iOS16 batch_dims, iOS17 validate_indices): slices of x along axis at indices.
    Output shape x.shape[:axis] + indices.shape[batch_dims:] + x.shape[axis+1:]; the first batch_dims
    dims of x and indices are matched. Negative indices count from the end; out-of-range indices raise."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    bd = as_int(batch_dims)
    idx = np.asarray(indices)
    bd = bd + idx.ndim if bd < 0 else bd
    idx = _wrap_indices(idx, x.shape[a], "gather")
    if bd == 0:
        return np.take(x, idx, axis=a)
    batch = x.shape[:bd]
    if idx.shape[:bd] != batch:
        raise OpExecutionError(f"gather batch_dims={bd}: x batch {list(batch)} != indices batch {list(idx.shape[:bd])}")
    nb = math.prod(batch)
    xf = x.reshape((nb,) + x.shape[bd:])
    idf = idx.reshape((nb,) + idx.shape[bd:])
    parts = [np.take(xf[i], idf[i], axis=a - bd) for i in range(nb)]
    out = np.stack(parts) if parts else np.empty((0,), x.dtype)
    return out.reshape(batch + parts[0].shape) if parts else out


@register("gather_along_axis", family=FAMILY)
def gather_along_axis(op: Operation, x: np.ndarray, indices: Any, axis: Any = 0, validate_indices: Any = False) -> np.ndarray:
    """MIL gather_along_axis (iOS15, iOS17): out[.., i, ..] = x[.., indices[.., i, ..], ..] along axis
    (numpy take_along_axis); negative indices count from the end."""
    x = np.asarray(x)
    a = norm_axis(as_int(axis), x.ndim)
    return np.take_along_axis(x, _wrap_indices(indices, x.shape[a], "gather_along_axis"), axis=a)


@register("gather_nd", family=FAMILY)
def gather_nd(op: Operation, x: np.ndarray, indices: Any, batch_dims: Any = 0, validate_indices: Any = False) -> np.ndarray:
    """MIL gather_nd (iOS15, iOS16 batch_dims, iOS17): out[b.., i..] = x[b.., *indices[b.., i.., :]];
    the last indices dim (K) indexes the K dims of x after the batch dims."""
    x = np.asarray(x)
    idx = np.asarray(indices).astype(np.int64, copy=False)
    bd = as_int(batch_dims)
    k = idx.shape[-1]
    batch = x.shape[:bd]
    nb = math.prod(batch)
    xf = x.reshape((nb,) + x.shape[bd:])
    idf = idx.reshape((nb, -1, k))
    dims = x.shape[bd : bd + k]
    cols = [_wrap_indices(idf[..., j], dims[j], "gather_nd") for j in range(k)]
    rows = np.arange(nb)[:, None]
    gathered = xf[(rows,) + tuple(cols)]  # (nb, n, *x.shape[bd+k:])
    return gathered.reshape(batch + idx.shape[bd:-1] + x.shape[bd + k :])


_SCATTER_MODES = ("update", "add", "sub", "mul", "div", "max", "min")


def _scatter_apply(data: np.ndarray, index: tuple, updates: np.ndarray, mode: str) -> None:
    if mode == "update":
        data[index] = updates
    elif mode == "add":
        np.add.at(data, index, updates)
    elif mode == "sub":
        np.subtract.at(data, index, updates)
    elif mode == "mul":
        np.multiply.at(data, index, updates)
    elif mode == "div":
        np.divide.at(data, index, updates)
    elif mode == "max":
        np.maximum.at(data, index, updates)
    elif mode == "min":
        np.minimum.at(data, index, updates)
    else:
        raise unsupported(f"scatter mode {mode!r}; expected one of {', '.join(_SCATTER_MODES)}")


@register("scatter", family=FAMILY)
def scatter(
    op: Operation, data: np.ndarray, indices: Any, updates: np.ndarray, axis: Any = 0, mode: Any = "add",
    validate_indices: Any = False,
) -> np.ndarray:
    """MIL scatter (iOS15, iOS17): a copy of data where data[.., indices[i], ..] (along axis) is combined
    with updates[.., i, ..] by mode (update, add, sub, mul, div, max, min; default add)."""
    out = np.array(data, copy=True)
    a = norm_axis(as_int(axis), out.ndim)
    idx = _wrap_indices(np.asarray(indices).reshape(-1), out.shape[a], "scatter")
    index = (slice(None),) * a + (idx,)
    _scatter_apply(out, index, np.asarray(updates, dtype=out.dtype), as_str(mode))
    return out


@register("scatter_along_axis", family=FAMILY)
def scatter_along_axis(
    op: Operation, data: np.ndarray, indices: Any, updates: np.ndarray, axis: Any = 0, mode: Any = "add",
    validate_indices: Any = False,
) -> np.ndarray:
    """MIL scatter_along_axis (iOS15, iOS17): out[.., indices[.., i, ..], ..] (op)= updates[.., i, ..]
    along axis (torch scatter), combined by mode (default add)."""
    out = np.array(data, copy=True)
    a = norm_axis(as_int(axis), out.ndim)
    idx = _wrap_indices(indices, out.shape[a], "scatter_along_axis")
    grids = list(np.indices(idx.shape, sparse=True))
    grids[a] = idx
    _scatter_apply(out, tuple(grids), np.asarray(updates, dtype=out.dtype), as_str(mode))
    return out


@register("scatter_nd", family=FAMILY)
def scatter_nd(
    op: Operation, data: np.ndarray, indices: Any, updates: np.ndarray, mode: Any = "add", validate_indices: Any = False
) -> np.ndarray:
    """MIL scatter_nd (iOS15, iOS17): out[*indices[i.., :]] (op)= updates[i..] with the last indices
    dim (K) addressing the first K dims of data; mode as in scatter (default add)."""
    out = np.array(data, copy=True)
    idx = np.asarray(indices)
    k = idx.shape[-1]
    flat = idx.reshape(-1, k)
    cols = tuple(_wrap_indices(flat[:, j], out.shape[j], "scatter_nd") for j in range(k))
    upd = np.asarray(updates, dtype=out.dtype).reshape((flat.shape[0],) + out.shape[k:])
    _scatter_apply(out, cols, upd, as_str(mode))
    return out
