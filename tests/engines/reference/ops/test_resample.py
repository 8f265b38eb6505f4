"""Upsample / resize kernels against index formulas and the sampling grids coremltools documents."""

from __future__ import annotations

import numpy as np
import pytest

F32 = np.float32
I32 = np.int32


def test_upsample_nearest_integer(run, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    out = run("upsample_nearest_neighbor", x=x, scale_factor_height=np.int32(2), scale_factor_width=np.int32(3))
    assert out.shape == (2, 3, 8, 15) and out.dtype == F32
    for i in range(8):
        for j in range(15):
            np.testing.assert_array_equal(out[..., i, j], x[..., i // 2, j // 3])
    same = run("upsample_nearest_neighbor", x=x)
    np.testing.assert_array_equal(same, x)
    as_float = run("upsample_nearest_neighbor", x=x, scale_factor_height=np.float32(2.0), scale_factor_width=np.float32(2.0))
    np.testing.assert_array_equal(as_float, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def test_upsample_nearest_fractional(run, rng):
    x = rng.standard_normal((1, 2, 4, 6)).astype(F32)
    out = run("upsample_nearest_neighbor", x=x, scale_factor_height=np.float32(1.5), scale_factor_width=np.float32(0.5))
    assert out.shape == (1, 2, 6, 3)
    for i in range(6):
        for j in range(3):
            np.testing.assert_array_equal(out[..., i, j], x[..., int(np.floor(i / 1.5)), int(np.floor(j / 0.5))])


def test_resize_nearest(run, rng):
    x = rng.standard_normal((1, 2, 4, 6)).astype(F32)
    out = run("resize_nearest_neighbor", x=x, target_size_height=np.int32(6), target_size_width=np.int32(4))
    assert out.shape == (1, 2, 6, 4)
    for i in range(6):
        for j in range(4):
            np.testing.assert_array_equal(out[..., i, j], x[..., (i * 4) // 6, (j * 6) // 4])
    np.testing.assert_array_equal(
        run("resize_nearest_neighbor", x=x, target_size_height=np.int32(8), target_size_width=np.int32(12)),
        np.repeat(np.repeat(x, 2, axis=2), 2, axis=3),
    )


# Grid points from coremltools' resize_bilinear / upsample_bilinear docstrings, for Xin = 2.
DOC_GRIDS = {
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("DEFAULT", 6): [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0],
    ("OFFSET_CORNERS", 6): [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12],
}


@pytest.mark.parametrize("mode, n_out", sorted(DOC_GRIDS))
def test_resize_bilinear_grids(run, mode, n_out):
    # Input values equal their coordinates, so the output is the sampling grid itself.
    x = np.array([0.0, 1.0], F32).reshape(1, 1, 1, 2)
    out = run("resize_bilinear", x=x, target_size_height=np.int32(1), target_size_width=np.int32(n_out), sampling_mode=mode)
    np.testing.assert_allclose(out[0, 0, 0], DOC_GRIDS[(mode, n_out)], atol=1e-6)


def ref_bilinear(x, rows, cols):
    """Separable linear interpolation at fractional input positions rows / cols."""
    x = x.astype(np.float64)
    h, w = x.shape[-2:]
    r0 = np.floor(rows).astype(int)
    r1 = np.minimum(r0 + 1, h - 1)
    fr = (rows - r0)[:, None]
    y = x[..., r0, :] * (1 - fr) + x[..., r1, :] * fr
    c0 = np.floor(cols).astype(int)
    c1 = np.minimum(c0 + 1, w - 1)
    fc = cols - c0
    return y[..., c0] * (1 - fc) + y[..., c1] * fc


def test_upsample_bilinear_modes(run, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    out = run("upsample_bilinear", x=x, scale_factor_height=np.float32(2), scale_factor_width=np.float32(2))  # align_corners
    rows = np.arange(8) * 3 / 7
    cols = np.arange(10) * 4 / 9
    np.testing.assert_allclose(out, ref_bilinear(x, rows, cols), rtol=1e-5, atol=1e-6)
    out = run("upsample_bilinear", x=x, scale_factor_height=np.int32(2), scale_factor_width=np.int32(2), align_corners=np.bool_(False))
    half = lambda n_in, n_out: np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    np.testing.assert_allclose(out, ref_bilinear(x, half(4, 8), half(5, 10)), rtol=1e-5, atol=1e-6)
    out = run("upsample_bilinear", x=x, scale_factor_height=np.int32(2), scale_factor_width=np.int32(2),
              align_corners=np.bool_(False), half_pixel_centers=np.bool_(False))
    np.testing.assert_allclose(out, ref_bilinear(x, np.arange(8) * 0.5, np.arange(10) * 0.5), rtol=1e-5, atol=1e-6)
    assert out.dtype == F32


def test_resize_ios17(run, rng):
    x = rng.standard_normal((1, 2, 4, 6)).astype(F32)
    out = run("resize", x=x, shape=np.array([1, 8, 12], I32), resized_dims=np.uint32(2))  # LINEAR, DEFAULT
    assert out.shape == (1, 2, 8, 12)
    np.testing.assert_allclose(out, ref_bilinear(x, np.arange(8) * 0.5, np.arange(12) * 0.5), rtol=1e-5, atol=1e-6)
    same_rows = run("resize", x=x, shape=np.array([0, 3], I32), resized_dims=np.uint32(2), sampling_mode="STRICT_ALIGN_CORNERS")
    assert same_rows.shape == (1, 2, 4, 3)
    np.testing.assert_allclose(same_rows, ref_bilinear(x, np.arange(4.0), np.arange(3) * 2.5), rtol=1e-5, atol=1e-6)
    nearest = run("resize", x=x, shape=np.array([6, 4], I32), resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR")
    np.testing.assert_array_equal(nearest, x[..., (np.arange(6) * 4) // 6, :][..., (np.arange(4) * 6) // 4])
    last_only = run("resize", x=x, shape=np.array([9], I32), resized_dims=np.uint32(1), interpolation_mode="NEAREST_NEIGHBOR")
    assert last_only.shape == (1, 2, 4, 9)
