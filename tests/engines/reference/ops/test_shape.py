"""Shape and indexing kernels against numpy indexing written out here."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import OpExecutionError, UnsupportedOpError

F32 = np.float32
I32 = np.int32


def arange(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=F32).reshape(shape)


@pytest.mark.parametrize(
    "in_shape, target, expected",
    [
        ((2, 3, 4), [6, -1], (6, 4)),
        ((2, 3, 4), [0, -1, 0], (2, 3, 4)),  # len(shape) == rank: 0 copies the same position
        ((2, 3, 4), [0, -1], (3, 8)),  # iOS17: zeros match input dims from the right
        ((2, 3, 4), [1, 0, 0, 0], (1, 2, 3, 4)),
        ((2, 50), [1, 0, -1, 0], (1, 1, 2, 50)),  # coremltools' iOS17 docstring example
        ((24,), [2, 3, 4], (2, 3, 4)),
        ((1,), [], ()),
    ],
)
def test_reshape(run, in_shape, target, expected):
    x = arange(*in_shape)
    out = run("reshape", x=x, shape=np.array(target, I32))
    assert out.shape == expected
    np.testing.assert_array_equal(out.reshape(-1), x.reshape(-1))


def test_reshape_errors(run):
    with pytest.raises(OpExecutionError, match="cannot reshape"):
        run("reshape", x=arange(2, 3), shape=np.array([4, -1], I32))
    with pytest.raises(OpExecutionError, match="more than one"):
        run("reshape", x=arange(2, 3), shape=np.array([-1, -1], I32))


def test_transpose_expand_squeeze(run):
    x = arange(2, 3, 4)
    np.testing.assert_array_equal(run("transpose", x=x, perm=np.array([2, 0, 1], I32)), np.moveaxis(x, 2, 0))
    np.testing.assert_array_equal(run("transpose", x=x, perm=np.array([-1, -3, -2], I32)), x.transpose(2, 0, 1))
    assert run("expand_dims", x=x, axes=np.array([0, -1], I32)).shape == (1, 2, 3, 4, 1)
    assert run("expand_dims", x=x, axes=np.array([1, 3], I32)).shape == (2, 1, 3, 1, 4)
    y = x.reshape(1, 2, 1, 3, 4, 1)
    assert run("squeeze", x=y).shape == (2, 3, 4)
    assert run("squeeze", x=y, axes=np.array([-1, 0], I32)).shape == (2, 1, 3, 4)
    assert run("squeeze", x=np.ones((1, 1), F32)).shape == ()
    with pytest.raises(OpExecutionError, match="size 2"):
        run("squeeze", x=y, axes=np.array([1], I32))
    assert run("flatten2d", x=x).shape == (2, 12)
    assert run("flatten2d", x=x, axis=np.int32(-1)).shape == (6, 4)
    assert run("flatten2d", x=x, axis=np.int32(0)).shape == (1, 24)


def test_slice_by_index_plain_and_strided(run):
    x = arange(4, 5, 6)
    out = run("slice_by_index", x=x, begin=np.array([1, 0, -4], I32), end=np.array([3, 5, -1], I32))
    np.testing.assert_array_equal(out, x[1:3, 0:5, -4:-1])
    out = run(
        "slice_by_index", x=x, begin=np.array([0, 4, 0], I32), end=np.array([4, 0, 6], I32), stride=np.array([2, -1, 3], I32)
    )
    np.testing.assert_array_equal(out, x[0:4:2, 4:0:-1, 0:6:3])


def test_slice_by_index_masks(run):
    x = arange(4, 5, 6)
    out = run(
        "slice_by_index",
        x=x,
        begin=np.array([9, 2, 3], I32),
        end=np.array([1, 99, 0], I32),
        begin_mask=np.array([True, False, False]),
        end_mask=np.array([False, True, True]),
    )
    np.testing.assert_array_equal(out, x[:1, 2:, 3:])
    out = run(
        "slice_by_index",
        x=x,
        begin=np.array([-1, 0, 2], I32),
        end=np.array([0, 0, 5], I32),
        end_mask=np.array([False, True, False]),
        squeeze_mask=np.array([True, False, False]),
    )
    np.testing.assert_array_equal(out, x[-1, :, 2:5])
    scalar = run(
        "slice_by_index", x=x, begin=np.array([1, 2, 3], I32), end=np.array([0, 0, 0], I32), squeeze_mask=np.array([True] * 3)
    )
    assert scalar.shape == () and scalar == x[1, 2, 3]
    # Apple's SPLIT_EINSUM attention slices heads out of the channel axis with an all-true end_mask but one axis.
    out = run(
        "slice_by_index",
        x=x,
        begin=np.array([0, 1, 0], I32),
        end=np.array([0, 3, 0], I32),
        begin_mask=np.array([True, False, True]),
        end_mask=np.array([True, False, True]),
    )
    np.testing.assert_array_equal(out, x[:, 1:3, :])


def test_slice_by_size(run):
    x = arange(4, 5)
    np.testing.assert_array_equal(run("slice_by_size", x=x, begin=np.array([1, 2], I32), size=np.array([2, -1], I32)), x[1:3, 2:])
    np.testing.assert_array_equal(run("slice_by_size", x=x, begin=np.array([-2, 0], I32), size=np.array([2, 1], I32)), x[2:4, 0:1])
    with pytest.raises(OpExecutionError):
        run("slice_by_size", x=x, begin=np.array([3, 0], I32), size=np.array([2, 1], I32))


def test_slice_update_copies(run):
    x = arange(3, 4)
    out = run("slice_update", x=x, update=np.full((2, 2), -1, F32), begin=np.array([1, 0], I32), end=np.array([3, 4], I32),
              stride=np.array([1, 2], I32))
    expected = x.copy()
    expected[1:3, 0:4:2] = -1
    np.testing.assert_array_equal(out, expected)
    assert x[1, 0] == 4  # input untouched


def test_split(run):
    x = arange(2, 7)
    parts = run("split", outputs=[("fp32", (2, 2)), ("fp32", (2, 5))], x=x, axis=np.int32(1), split_sizes=np.array([2, 5], I32))
    assert isinstance(parts, tuple) and len(parts) == 2
    np.testing.assert_array_equal(parts[0], x[:, :2])
    np.testing.assert_array_equal(parts[1], x[:, 2:])
    parts = run("split", x=arange(6, 2), axis=np.int32(-2), num_splits=np.int32(3))
    assert [p.shape for p in parts] == [(2, 2)] * 3
    np.testing.assert_array_equal(parts[2], arange(6, 2)[4:])
    with pytest.raises(OpExecutionError):
        run("split", x=x, axis=np.int32(1), num_splits=np.int32(2))


def test_concat_and_interleave_and_stack(run):
    a, b = arange(2, 3), arange(2, 3) + 100
    np.testing.assert_array_equal(run("concat", values=[a, b], axis=np.int32(-1)), np.hstack([a, b]))
    np.testing.assert_array_equal(run("concat", values=[a, b[:1]], axis=np.int32(0)), np.vstack([a, b[:1]]))
    inter = run("concat", values=[a, b], axis=np.int32(1), interleave=np.bool_(True))
    np.testing.assert_array_equal(inter, [[0, 100, 1, 101, 2, 102], [3, 103, 4, 104, 5, 105]])
    st = run("stack", values=[a, b], axis=np.int32(-1))
    assert st.shape == (2, 3, 2)
    np.testing.assert_array_equal(st[..., 1], b)
    ints = run("concat", values=[np.array([1], I32), np.array([2, 3], I32)], axis=np.int32(0))
    assert ints.dtype == I32 and ints.tolist() == [1, 2, 3]


def test_tile_pad(run):
    x = arange(2, 3)
    np.testing.assert_array_equal(run("tile", x=x, reps=np.array([2, 1], I32)), np.vstack([x, x]))
    out = run("pad", x=x, pad=np.array([1, 2], I32), constant_val=np.float32(-1))
    np.testing.assert_array_equal(out[0], [-1, 0, 1, 2, -1, -1])
    out = run("pad", x=x, pad=np.array([0, 1, 1, 0], I32))
    assert out.shape == (3, 4) and out[2].tolist() == [0, 0, 0, 0] and out[0].tolist() == [0, 0, 1, 2]
    refl = run("pad", x=x, pad=np.array([2, 1], I32), mode="reflect")
    np.testing.assert_array_equal(refl[0], [2, 1, 0, 1, 2, 1])
    rep = run("pad", x=x, pad=np.array([1, 1, 2, 0], I32), mode="replicate")
    np.testing.assert_array_equal(rep[:, 0], [0, 0, 3, 3])
    np.testing.assert_array_equal(rep[0], [0, 0, 0, 1, 2])
    crop = run("pad", x=x, pad=np.array([-1, 1], I32))
    np.testing.assert_array_equal(crop, [[1, 2, 0], [4, 5, 0]])
    with pytest.raises(UnsupportedOpError):
        run("pad", x=x, pad=np.array([1, 1], I32), mode="circular")


def test_shape_fill_range(run):
    assert run("shape", x=arange(2, 3, 4)).tolist() == [2, 3, 4]
    assert run("shape", x=arange(2, 3, 4)).dtype == I32
    assert run("shape", x=np.float32(1)).shape == (0,)
    f = run("fill", shape=np.array([2, 2], I32), value=np.float32(1.5))
    assert f.dtype == F32 and f.tolist() == [[1.5, 1.5], [1.5, 1.5]]
    assert run("fill", shape=np.array([3], I32)).tolist() == [0.0, 0.0, 0.0]
    assert run("fill", shape=np.array([2], I32), value=np.int32(7)).dtype == I32
    assert run("fill_like", ref_tensor=arange(2, 1), value=np.float32(3)).tolist() == [[3.0], [3.0]]
    r = run("range_1d", end=np.int32(7), start=np.int32(1), step=np.int32(2))
    assert r.dtype == I32 and r.tolist() == [1, 3, 5]
    r = run("range_1d", end=np.float32(1.0), start=np.float32(0.0), step=np.float32(0.25))
    assert r.dtype == F32 and r.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert run("range_1d", end=np.int32(0), start=np.int32(3), step=np.int32(-1)).tolist() == [3, 2, 1]


def test_band_part(run):
    x = np.ones((2, 4, 4), F32)
    out = run("band_part", x=x, lower=np.int32(1), upper=np.int32(0))
    i, j = np.indices((4, 4))
    np.testing.assert_array_equal(out[1], ((i - j <= 1) & (j - i <= 0)).astype(F32))
    np.testing.assert_array_equal(run("band_part", x=x, lower=np.int32(0), upper=np.int32(-1))[0], np.triu(np.ones((4, 4))))
    np.testing.assert_array_equal(run("band_part", x=x), x)


def test_reverse_and_reverse_sequence(run):
    x = arange(2, 3)
    np.testing.assert_array_equal(run("reverse", x=x, axes=np.array([-1], I32)), x[:, ::-1])
    np.testing.assert_array_equal(run("reverse", x=x), x[::-1, ::-1])
    seq = arange(3, 4)  # batch axis 0, seq axis 1
    out = run("reverse_sequence", x=seq, lengths=np.array([2, 4, 1], I32), seq_axis=np.int32(1), batch_axis=np.int32(0))
    np.testing.assert_array_equal(out[0], [1, 0, 2, 3])
    np.testing.assert_array_equal(out[1], [7, 6, 5, 4])
    np.testing.assert_array_equal(out[2], [8, 9, 10, 11])


def test_space_depth_pixel_shuffle(run):
    x = arange(1, 8, 2, 3)
    d2s = run("depth_to_space", x=x, block_size=np.int32(2))
    assert d2s.shape == (1, 2, 4, 6)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                np.testing.assert_array_equal(d2s[0, c, i::2, j::2], x[0, (i * 2 + j) * 2 + c])
    np.testing.assert_array_equal(run("space_to_depth", x=d2s, block_size=np.int32(2)), x)
    ps = run("pixel_shuffle", x=x, upscale_factor=np.int32(2))
    for c in range(2):
        for i in range(2):
            for j in range(2):
                np.testing.assert_array_equal(ps[0, c, i::2, j::2], x[0, c * 4 + i * 2 + j])
    np.testing.assert_array_equal(run("pixel_unshuffle", x=ps, downscale_factor=np.int32(2)), x)


def test_sliding_windows(run):
    x = arange(2, 7)
    out = run("sliding_windows", x=x, axis=np.int32(1), size=np.int32(3), stride=np.int32(2))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[1, 2], x[1, 4:7])
    np.testing.assert_array_equal(out[0, 1], x[0, 2:5])


def test_non_zero_and_one_hot(run):
    x = np.array([[0, 1], [2, 0]], F32)
    nz = run("non_zero", x=x)
    assert nz.dtype == I32 and nz.tolist() == [[0, 1], [1, 0]]
    oh = run("one_hot", indices=np.array([0, 2], I32), one_hot_vector_size=np.int32(3))
    assert oh.tolist() == [[1, 0, 0], [0, 0, 1]]
    oh = run("one_hot", indices=np.array([[1], [0]], I32), one_hot_vector_size=np.int32(2), axis=np.int32(0),
             on_value=np.float32(5), off_value=np.float32(-1))
    assert oh.shape == (2, 2, 1) and oh.dtype == F32
    np.testing.assert_array_equal(oh[:, :, 0], [[-1, 5], [5, -1]])


def test_gather(run):
    x = arange(4, 3)
    np.testing.assert_array_equal(run("gather", x=x, indices=np.array([2, 0, -1], I32)), x[[2, 0, 3]])
    np.testing.assert_array_equal(run("gather", x=x, indices=np.array([[1], [2]], I32), axis=np.int32(-1)), x[:, [[1], [2]]])
    scalar_index = run("gather", x=x, indices=np.int32(1))
    np.testing.assert_array_equal(scalar_index, x[1])
    # CLIP's embedding lookup: int32 ids into a (vocab, dim) table.
    table = arange(10, 4)
    ids = np.array([[3, 9, 0]], I32)
    np.testing.assert_array_equal(run("gather", x=table, indices=ids, axis=np.int32(0)), table[ids])
    with pytest.raises(OpExecutionError, match="indices"):
        run("gather", x=x, indices=np.array([4], I32))


def test_gather_with_batch_dims(run, rng):
    x = rng.standard_normal((2, 5, 3)).astype(F32)
    idx = np.array([[4, 0], [1, 1]], I32)
    out = run("gather", x=x, indices=idx, axis=np.int32(1), batch_dims=np.int32(1))
    assert out.shape == (2, 2, 3)
    for b in range(2):
        np.testing.assert_array_equal(out[b], x[b, idx[b]])
    out = run("gather", x=x, indices=np.array([[2], [0]], I32), axis=np.int32(2), batch_dims=np.int32(1))
    assert out.shape == (2, 5, 1)
    np.testing.assert_array_equal(out[1, :, 0], x[1, :, 0])


def test_gather_along_axis_and_gather_nd(run, rng):
    x = rng.standard_normal((3, 4)).astype(F32)
    idx = np.array([[0, 3], [1, 1], [-1, 2]], I32)
    out = run("gather_along_axis", x=x, indices=idx, axis=np.int32(1))
    expected = np.array([[x[r, c % 4] for c in row] for r, row in enumerate(idx)])
    np.testing.assert_array_equal(out, expected)
    nd_idx = np.array([[0, 1], [2, 3], [1, 0]], I32)
    np.testing.assert_array_equal(run("gather_nd", x=x, indices=nd_idx), [x[0, 1], x[2, 3], x[1, 0]])
    rows = run("gather_nd", x=x, indices=np.array([[2], [0]], I32))
    np.testing.assert_array_equal(rows, x[[2, 0]])
    # CLIP pooling: per batch row, pick the token at the argmax position (batch_dims = 1).
    h = rng.standard_normal((2, 5, 3)).astype(F32)
    pos = np.array([[4], [1]], I32)
    pooled = run("gather_nd", x=h, indices=pos, batch_dims=np.int32(1))
    assert pooled.shape == (2, 3)
    np.testing.assert_array_equal(pooled, h[[0, 1], [4, 1]])
    # the other common CLIP form: explicit (batch, position) pairs
    pooled = run("gather_nd", x=h, indices=np.array([[0, 4], [1, 1]], I32))
    np.testing.assert_array_equal(pooled, h[[0, 1], [4, 1]])


@pytest.mark.parametrize("mode, expected", [
    ("update", [[10, 10], [1, 1], [20, 20]]),
    ("add", [[10, 10], [1, 1], [22, 22]]),
    ("mul", [[0, 0], [1, 1], [40, 40]]),
    ("max", [[10, 10], [1, 1], [20, 20]]),
])
def test_scatter_modes(run, mode, expected):
    data = np.array([[0, 0], [1, 1], [2, 2]], F32)
    out = run("scatter", data=data, indices=np.array([0, 2], I32), updates=np.array([[10, 10], [20, 20]], F32),
              axis=np.int32(0), mode=mode)
    np.testing.assert_array_equal(out, expected)
    assert data[0, 0] == 0


def test_scatter_along_axis_and_nd(run):
    data = np.zeros((2, 3), F32)
    out = run("scatter_along_axis", data=data, indices=np.array([[2, 0], [1, 1]], I32), updates=np.array([[1, 2], [3, 4]], F32),
              axis=np.int32(1), mode="add")
    np.testing.assert_array_equal(out, [[2, 0, 1], [0, 7, 0]])
    out = run("scatter_nd", data=np.zeros((2, 2), F32), indices=np.array([[0, 1], [1, 0], [0, 1]], I32),
              updates=np.array([1, 2, 3], F32))
    np.testing.assert_array_equal(out, [[0, 4], [2, 0]])
    out = run("scatter_nd", data=np.zeros((2, 2), F32), indices=np.array([[1]], I32), updates=np.array([[5, 6]], F32),
              mode="update")
    np.testing.assert_array_equal(out, [[0, 0], [5, 6]])


def test_crop(run):
    x = arange(1, 5, 6)
    np.testing.assert_array_equal(run("crop", x=x, crop_height=np.array([1, 2], I32), crop_width=np.array([0, 3], I32)),
                                  x[:, 1:3, 0:3])


def test_reshape_like(run):
    x = arange(2, 3, 4)
    out = run("reshape_like", x=x, ref_tensors=[np.zeros((6, 9)), np.zeros((5, 2, 2))], begins=np.array([0, 1], I32),
              ends=np.array([1, 0], I32), end_masks=np.array([False, True]))
    assert out.shape == (6, 2, 2)
    np.testing.assert_array_equal(out.reshape(-1), x.reshape(-1))
