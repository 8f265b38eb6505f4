"""conv, conv_transpose and pooling kernels against direct-summation numpy references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.engines.reference.graph import Operation, TensorType, Value
from bench.engines.reference.ops import get_kernel
from bench.errors import OpExecutionError

F32 = np.float32
I32 = np.int32


def same_pads(sizes, kernel, strides, dilations, lower=False):
    """TensorFlow's SAME rule: output ceil(in / stride); the odd extra pad goes after (before if lower)."""
    pads = []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-n // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        small, large = total // 2, total - total // 2
        pads.append((large, small) if lower else (small, large))
    return pads


def ref_conv(x, w, b, strides, pads, dilations, groups):
    """out[n, o, p] = b[o] + sum_{c, k} w[o, c, k] * xpad[n, g(o) * cg + c, p * s + k * d], summed directly."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    out_sizes = [
        (xp.shape[2 + i] - (k - 1) * d - 1) // s + 1 for i, (k, s, d) in enumerate(zip(kernel, strides, dilations))
    ]
    cg, og = c // groups, c_out // groups
    out = np.zeros((n, c_out, *out_sizes))
    for o in range(c_out):
        g = o // og
        for pos in np.ndindex(*out_sizes):
            window = tuple(slice(p * s, p * s + (k - 1) * d + 1, d) for p, k, s, d in zip(pos, kernel, strides, dilations))
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            out[(slice(None), o) + pos] = np.sum(patch * w[o], axis=tuple(range(1, patch.ndim)))
    if b is not None:
        out += b.reshape((1, c_out) + (1,) * len(kernel))
    return out


CASES = [
    # (x shape, weight shape, strides, dilations, groups, pad_type, custom pad)
    ((2, 6, 9, 8), (4, 6, 3, 3), (1, 1), (1, 1), 1, "same", None),  # C_out < C_in: shifted-GEMM path
    ((2, 3, 9, 8), (5, 3, 3, 3), (1, 1), (1, 1), 1, "same", None),  # C_out > C_in: im2col path
    ((1, 4, 7, 7), (4, 4, 3, 3), (2, 2), (1, 1), 1, "custom", [1, 1, 1, 1]),  # UNet downsample
    ((2, 4, 8, 9), (4, 4, 3, 2), (1, 2), (1, 1), 1, "valid", None),
    ((1, 4, 10, 9), (3, 4, 3, 3), (1, 1), (2, 3), 1, "same", None),  # dilations, shifted path
    ((1, 2, 10, 9), (3, 2, 3, 3), (1, 1), (2, 1), 1, "custom", [0, 2, 1, 0]),
    ((1, 4, 6, 6), (6, 2, 3, 3), (1, 1), (1, 1), 2, "same", None),  # groups
    ((1, 3, 6, 6), (6, 1, 3, 3), (1, 1), (1, 1), 3, "same", None),  # depthwise, multiplier 2
    ((1, 3, 7, 6), (3, 1, 3, 3), (2, 1), (1, 1), 3, "valid", None),
    ((2, 5, 4, 4), (7, 5, 1, 1), (1, 1), (1, 1), 1, "valid", None),  # 1x1
    ((1, 5, 5, 4), (3, 5, 1, 1), (2, 2), (1, 1), 1, "valid", None),  # strided 1x1
    ((2, 3, 11), (4, 3, 3), (1,), (1,), 1, "same", None),  # 1-D
    ((1, 2, 5, 4, 4), (3, 2, 3, 1, 2), (1, 1, 2), (1, 1, 1), 1, "same", None),  # 3-D
    ((1, 4, 8, 8), (4, 4, 4, 4), (1, 1), (1, 1), 1, "same", None),  # even kernel: extra pad after
    ((1, 4, 8, 8), (4, 4, 4, 4), (1, 1), (1, 1), 1, "same_lower", None),
    ((1, 4, 5, 5), (2, 4, 3, 3), (3, 3), (1, 1), 1, "same", None),
]


@pytest.mark.parametrize("x_shape, w_shape, strides, dilations, groups, pad_type, pad", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_matches_direct_sum(run, rng, x_shape, w_shape, strides, dilations, groups, pad_type, pad, with_bias):
    x = rng.standard_normal(x_shape).astype(F32)
    w = rng.standard_normal(w_shape).astype(F32)
    b = rng.standard_normal(w_shape[0]).astype(F32) if with_bias else None
    kwargs = {"x": x, "weight": w, "strides": np.array(strides, I32), "dilations": np.array(dilations, I32),
                  "groups": np.int32(groups), "pad_type": pad_type}
    if pad is not None:
        kwargs["pad"] = np.array(pad, I32)
    if b is not None:
        kwargs["bias"] = b
    out = run("conv", **kwargs)
    spatial = x_shape[2:]
    if pad_type == "custom":
        pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(spatial))]
    elif pad_type == "valid":
        pads = [(0, 0)] * len(spatial)
    else:
        pads = same_pads(spatial, w_shape[2:], strides, dilations, lower=pad_type == "same_lower")
    expected = ref_conv(x, w, b, strides, pads, dilations, groups)
    assert out.dtype == F32
    assert out.shape == expected.shape
    if pad_type == "same" and all(s == 1 for s in strides):
        assert out.shape[2:] == x.shape[2:]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv_defaults_are_valid_stride_1(run, rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(F32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(F32)
    out = run("conv", x=x, weight=w)
    np.testing.assert_allclose(out, ref_conv(x, w, None, (1, 1), [(0, 0), (0, 0)], (1, 1), 1), rtol=1e-4, atol=1e-4)


def test_conv_unet_sized_against_direct_sum_on_a_few_outputs(run, rng):
    # 3x3 at UNet sizes exercises the shifted-GEMM bookkeeping on wide rows; check sampled outputs.
    x = rng.standard_normal((2, 64, 32, 32)).astype(F32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(F32)
    b = rng.standard_normal(64).astype(F32)
    out = run("conv", x=x, weight=w, bias=b, pad_type="custom", pad=np.array([1, 1, 1, 1], I32))
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 1), (1, 1)])
    for n, o, i, j in [(0, 0, 0, 0), (1, 63, 31, 31), (0, 17, 0, 31), (1, 5, 16, 0), (0, 40, 20, 9)]:
        expected = np.sum(xp[n, :, i : i + 3, j : j + 3] * w[o]) + b[o]
        assert out[n, o, i, j] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_conv_rejects_bad_groups(run):
    with pytest.raises(OpExecutionError, match="groups"):
        run("conv", x=np.zeros((1, 4, 3, 3), F32), weight=np.zeros((4, 3, 1, 1), F32), groups=np.int32(2))


def test_conv_flops():
    x = np.zeros((2, 4, 8, 8), F32)
    w = np.zeros((6, 4, 3, 3), F32)
    out = np.zeros((2, 6, 8, 8), F32)
    assert get_kernel("conv").flops(None, {"x": x, "weight": w}, (out,)) == 2 * out.size * 4 * 9


def ref_conv_transpose(x, w, b, strides, dilations, groups):
    """Full transposed conv: out[n, o, p * s + k * d] += x[n, c, p] * w[c, o', k], summed directly."""
    n, c_in = x.shape[:2]
    og = w.shape[1]
    c_out = og * groups
    kernel = w.shape[2:]
    spatial = x.shape[2:]
    full = [(i - 1) * s + (k - 1) * d + 1 for i, k, s, d in zip(spatial, kernel, strides, dilations)]
    out = np.zeros((n, c_out, *full))
    cg = c_in // groups
    for c in range(c_in):
        g = c // cg
        for p in np.ndindex(*spatial):
            for k in np.ndindex(*kernel):
                q = tuple(pi * s + ki * d for pi, ki, s, d in zip(p, k, strides, dilations))
                out[(slice(None), slice(g * og, (g + 1) * og)) + q] += x[(slice(None), c) + p][:, None] * w[(c, slice(None)) + k]
    if b is not None:
        out += b.reshape((1, c_out) + (1,) * len(kernel))
    return out


@pytest.mark.parametrize(
    "x_shape, w_shape, strides, dilations, groups",
    [
        ((1, 3, 4, 5), (3, 2, 3, 3), (2, 2), (1, 1), 1),
        ((2, 4, 3, 3), (4, 3, 4, 4), (2, 2), (1, 1), 1),
        ((1, 4, 3, 4), (4, 1, 3, 2), (1, 2), (2, 1), 2),
        ((1, 2, 5), (2, 3, 3), (3,), (1,), 1),
    ],
)
def test_conv_transpose_valid_custom_same(run, rng, x_shape, w_shape, strides, dilations, groups):
    x = rng.standard_normal(x_shape).astype(F32)
    w = rng.standard_normal(w_shape).astype(F32)
    b = rng.standard_normal(w_shape[1] * groups).astype(F32)
    common = {"x": x, "weight": w, "bias": b, "strides": np.array(strides, I32), "dilations": np.array(dilations, I32),
                  "groups": np.int32(groups)}
    full = ref_conv_transpose(x.astype(np.float64), w.astype(np.float64), b, strides, dilations, groups)
    out = run("conv_transpose", **common)
    assert out.dtype == F32
    np.testing.assert_allclose(out, full, rtol=1e-4, atol=1e-4)
    nd = len(strides)
    pad = [1, 0] * nd
    out = run("conv_transpose", pad_type="custom", pad=np.array(pad, I32), **common)
    np.testing.assert_allclose(out, full[(slice(None), slice(None)) + (slice(1, None),) * nd], rtol=1e-4, atol=1e-4)
    out = run("conv_transpose", pad_type="same", **common)
    sizes = [i * s for i, s in zip(x_shape[2:], strides)]
    before = [(f - o) // 2 for f, o in zip(full.shape[2:], sizes)]
    crop = tuple(slice(b0, b0 + o) for b0, o in zip(before, sizes))
    np.testing.assert_allclose(out, full[(slice(None), slice(None)) + crop], rtol=1e-4, atol=1e-4)


def test_conv_transpose_output_shape_like_torch_output_padding(run, rng):
    # torch ConvTranspose2d(stride 2, padding 1, output_padding 1) on 4x4: output 8x8; the frontend
    # passes pad [1, 1, 1, 1] and output_shape, and the extra row / column comes from the full result.
    x = rng.standard_normal((1, 2, 4, 4)).astype(F32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(F32)
    full = ref_conv_transpose(x.astype(np.float64), w.astype(np.float64), None, (2, 2), (1, 1), 1)  # 9x9
    out = run("conv_transpose", x=x, weight=w, strides=np.array([2, 2], I32), pad_type="custom",
              pad=np.array([1, 1, 1, 1], I32), output_shape=np.array([1, 3, 8, 8], I32))
    assert out.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(out, full[:, :, 1:9, 1:9], rtol=1e-4, atol=1e-4)


def ref_pool(x, k, s, pads, reducer, fill):
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + pads, constant_values=fill)
    out_sizes = [(xp.shape[2 + i] - k[i]) // s[i] + 1 for i in range(len(k))]
    out = np.zeros(x.shape[:2] + tuple(out_sizes))
    for pos in np.ndindex(*out_sizes):
        window = tuple(slice(p * st, p * st + kk) for p, st, kk in zip(pos, s, k))
        out[(slice(None), slice(None)) + pos] = reducer(xp[(slice(None), slice(None)) + window])
    return out


def test_pools(run, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(F32)
    common = {"x": x, "kernel_sizes": np.array([3, 2], I32), "strides": np.array([2, 2], I32)}
    flat = lambda r: (lambda p: r(p.reshape(p.shape[0], p.shape[1], -1), axis=-1))
    np.testing.assert_allclose(
        run("max_pool", pad_type="valid", **common), ref_pool(x, (3, 2), (2, 2), [(0, 0), (0, 0)], flat(np.max), 0), rtol=1e-6
    )
    np.testing.assert_allclose(
        run("avg_pool", pad_type="custom", pad=np.array([1, 1, 0, 0], I32), **common),
        ref_pool(x, (3, 2), (2, 2), [(1, 1), (0, 0)], flat(np.mean), 0),
        rtol=1e-5,
        atol=1e-6,
    )
    excl = run("avg_pool", pad_type="custom", pad=np.array([1, 1, 0, 0], I32), exclude_padding_from_average=np.bool_(True), **common)
    ones = ref_pool(np.ones_like(x), (3, 2), (2, 2), [(1, 1), (0, 0)], flat(np.sum), 0)
    sums = ref_pool(x, (3, 2), (2, 2), [(1, 1), (0, 0)], flat(np.sum), 0)
    np.testing.assert_allclose(excl, sums / ones, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        run("l2_pool", pad_type="valid", **common),
        ref_pool(x, (3, 2), (2, 2), [(0, 0), (0, 0)], lambda p: np.sqrt(np.sum(p.reshape(2, 3, -1) ** 2, axis=-1)), 0),
        rtol=1e-5,
    )
    mp = run("max_pool", x=-np.abs(x), kernel_sizes=np.array([3, 3], I32), strides=np.array([1, 1], I32), pad_type="same")
    assert mp.shape == x.shape and np.all(mp <= 0)  # padding never wins a max
    ceil = run("max_pool", x=x, kernel_sizes=np.array([2, 2], I32), strides=np.array([2, 2], I32), pad_type="valid",
               ceil_mode=np.bool_(True))
    assert ceil.shape == (2, 3, math.ceil(7 / 2), 3)
    np.testing.assert_allclose(ceil[:, :, -1, :], np.max(x[:, :, 6:7, :].reshape(2, 3, 3, 2), axis=-1), rtol=1e-6)


# -- Winograd F(2x2, 3x3) and F(4x4, 3x3): weights packed at load by the kernel's `prepare` ----------------

WINOGRAD_CASES = [
    # (x shape, pad_type, custom pad): even and odd sizes, asymmetric and cropping pads
    ((2, 5, 8, 8), "custom", [1, 1, 1, 1]),
    ((1, 4, 7, 9), "same", None),
    ((2, 3, 6, 5), "valid", None),
    ((1, 4, 9, 6), "custom", [0, 2, 2, 1]),
    ((1, 3, 8, 8), "custom", [-1, 1, 1, 0]),
    ((1, 2, 3, 3), "valid", None),  # one output pixel
]


def prepared_conv(run, monkeypatch, tile=2, **kwargs):
    """Run conv as the interpreter does: constant parameters through `prepare` first (packed in
    the given Winograd tile, whatever the size rule would pick)."""
    from bench.engines.reference.ops import winograd

    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # the small shapes here take the Winograd path too
    monkeypatch.setattr(winograd, "choose_tile", lambda *args: tile)
    kernel = get_kernel("conv")
    static = {k: v for k, v in kwargs.items() if k != "x"}
    static = kernel.prepare(None, static)
    assert isinstance(static["weight"], winograd.WinogradWeight) and static["weight"].tile == tile
    return run("conv", x=kwargs["x"], **static)


@pytest.mark.parametrize("x_shape, pad_type, pad", WINOGRAD_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_conv_matches_direct_sum(run, rng, monkeypatch, x_shape, pad_type, pad, with_bias, tile):
    x = rng.standard_normal(x_shape).astype(F32)
    w = rng.standard_normal((6, x_shape[1], 3, 3)).astype(F32)
    b = rng.standard_normal(6).astype(F32) if with_bias else None
    kwargs = {"x": x, "weight": w, "pad_type": pad_type, "strides": np.array([1, 1], I32),
              "dilations": np.array([1, 1], I32), "groups": np.int32(1)}
    if pad is not None:
        kwargs["pad"] = np.array(pad, I32)
    if b is not None:
        kwargs["bias"] = b
    out = prepared_conv(run, monkeypatch, tile, **kwargs)
    if pad_type == "custom":
        pads = [(pad[0], pad[1]), (pad[2], pad[3])]
        if min(pad) < 0:  # crop, then the positive pads
            x = x[:, :, 1:, :]
            pads = [(0, 1), (1, 0)]
    elif pad_type == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = same_pads(x_shape[2:], (3, 3), (1, 1), (1, 1))
    expected = ref_conv(x, w, b, (1, 1), pads, (1, 1), 1)
    assert out.dtype == F32 and out.shape == expected.shape and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_winograd_applies_only_to_wide_3x3_stride_1_convs():
    from bench.engines.reference.ops import winograd

    prepare = get_kernel("conv").prepare
    wide = np.zeros((128, 128, 3, 3), F32)
    assert isinstance(prepare(None, {"weight": wide})["weight"], winograd.WinogradWeight)
    for static in (
        {"weight": np.zeros((64, 128, 3, 3), F32)},  # too few output channels
        {"weight": wide, "strides": np.array([2, 2], I32)},
        {"weight": wide, "dilations": np.array([2, 1], I32)},
        {"weight": np.zeros((128, 64, 3, 3), F32), "groups": np.int32(2)},
        {"weight": np.zeros((128, 128, 1, 1), F32)},
        {"weight": np.zeros((128, 128, 3), F32)},
    ):
        assert isinstance(prepare(None, static)["weight"], np.ndarray)


def test_winograd_tile_follows_output_size_and_weight_budget():
    """F(4x4, 3x3) where the program types an output large enough and the 4x weight fits its budget."""
    from bench.engines.reference.ops import winograd

    assert winograd.choose_tile((320, 320, 3, 3), (32, 32)) == 4
    assert winograd.choose_tile((320, 320, 3, 3), (winograd.F4_MIN_SIZE - 1, 32)) == 2  # too few tiles
    assert winograd.choose_tile((1280, 1280, 3, 3), (32, 32)) == 2  # 236 MB as F(4x4, 3x3)
    assert winograd.choose_tile((640, 1280, 3, 3), (32, 32)) == 4  # 118 MB
    assert winograd.choose_tile((320, 320, 3, 3), (None, 32)) == 2  # not static: the smaller transform
    assert winograd.choose_tile((320, 320, 3, 3), None) == 2


def conv_op(output_shape):
    """A conv `Operation` whose output the program types as `output_shape`."""
    return Operation(type="conv", name="conv_0", inputs={}, outputs=(Value("y", TensorType("fp32", output_shape)),))


@pytest.mark.parametrize("output_size, tile", [(24, 4), (8, 2)])
def test_winograd_prepare_reads_the_output_size_the_program_types(rng, output_size, tile):
    from bench.engines.reference.ops import winograd

    w = np.zeros((128, 128, 3, 3), F32)
    op = conv_op((2, 128, output_size, output_size))
    static = get_kernel("conv").prepare(op, {"weight": w, "pad_type": "same"})
    assert isinstance(static["weight"], winograd.WinogradWeight) and static["weight"].tile == tile
    assert static["weight"].u.shape == ((tile + 2) ** 2, 128, 128)


@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_conv_unet_sized_against_float64_conv(run, rng, tile):
    """At UNet width (the default threshold applies) the packed path agrees with a float64 GEMM conv."""
    from bench.engines.reference.ops import conv as conv_ops

    x = rng.standard_normal((2, 128, 12, 12)).astype(F32)
    w = (rng.standard_normal((160, 128, 3, 3)) / math.sqrt(128 * 9)).astype(F32)
    b = rng.standard_normal(160).astype(F32)
    kernel = get_kernel("conv")
    output_size = 12 if tile == 4 else 8  # the program's typed output picks the tile
    op = conv_op((2, 160, output_size, output_size))
    static = kernel.prepare(op, {"weight": w, "bias": b, "pad_type": "custom", "pad": np.array([1, 1, 1, 1], I32)})
    assert static["weight"].tile == tile
    out = run("conv", x=x, **static)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 1), (1, 1)])
    cols, _ = conv_ops._im2col(xp, (3, 3), (1, 1), (1, 1))  # float64 columns: an exact-as-possible reference
    expected = (w.astype(np.float64).reshape(160, -1) @ cols.reshape(128 * 9, -1)).reshape(160, 2, 12, 12)
    expected = expected.transpose(1, 0, 2, 3) + b.reshape(1, 160, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    flops = kernel.flops(None, {"x": x, **static}, (out,))
    assert flops == 2 * out.size * 128 * 9 + out.size  # counted as the direct conv's
