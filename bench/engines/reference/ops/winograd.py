"""3x3 stride-1 convolution by Winograd's minimal filtering, F(2x2, 3x3) and F(4x4, 3x3).

Why: the 3x3 convolutions of an SDXL UNet are about half of a call's time, and numpy's GEMM is
the ceiling of any direct or im2col method. F(2x2, 3x3) computes each 2x2 output tile from a 4x4
input tile with 16 products per (input, output) channel pair instead of 36: the GEMM work drops
2.25x for a few elementwise passes (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015; oneDNN uses the same scheme on CPUs). F(4x4, 3x3) computes 4x4 tiles from 6x6
input tiles with 36 products per 16 pixels: 4x less GEMM work than the direct conv.

Which one (`choose_tile`, decided at load from the program's typed output size): F(4x4, 3x3)
when the output is at least `F4_MIN_SIZE` on each side and its weight, 4x the 3x3 weight, fits
`F4_MAX_PACKED_BYTES`; F(2x2, 3x3) otherwise. Measured on this 2-core box, 2 threads, batch 2,
F(4x4) against F(2x2): 320->320 @ 32x32 11.3 vs 17.7 ms, 640->640 @ 16x16 10.0 vs 14.3 ms,
1280->1280 @ 24x24 60 vs 95 ms, but 640->640 @ 8x8 6.3 vs 6.1 ms (too few tiles to feed the
GEMMs). The budget keeps SDXL's 1280-wide convs at F(2x2): as F(4x4) they would add 2.8 GB to a
real-size UNet. Errors stay at float32 rounding level: F(2x2) against torch PSNR 140 dB vs 144 dB
for the direct method on random weights; F(4x4) differs from F(2x2) by about 1e-5 of the output's
range (its transforms hold larger constants).

F(2x2, 3x3) figures against the GEMM methods, single thread, batch 2: 640->640 @ 16x16 25 ms vs
56 ms im2col / shifted GEMM (torch's oneDNN direct conv 36 ms); 1280->1280 @ 24x24 197 ms vs
447 ms (torch 360 ms); 320->320 @ 32x32 28-32 ms vs 46-49 ms. Below 128 channels the transforms
cost more than they save (64->64 @ 32x32 4.2 ms vs 3.6 ms), so `applies` keeps small convs on the
GEMM paths.

The weight transform U = G g G^T is done once at load (`WinogradWeight.pack`), in float64, and
replaces the 3x3 weight in memory. Per call: the input tiles are transformed (V = B^T d B) in
channel blocks that stay in cache, one batched GEMM per tile position ((tile + 2)^2 x
(C_out, C_in) @ (C_in, tiles), split across the kernel threads by `gemm.matmul`), then the output
transform (Y = A^T M A) and the bias, again in channel blocks on the kernel threads. F(2x2)'s
input transform works on phase planes (see `_conv_f2`): for 1280 -> 320 channels at 32x32, batch
2, one thread, it took 22 ms against 31 ms as strided 2x2-tile passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from bench.engines.reference.ops._util import F32, parallel_for
from bench.engines.reference.ops.gemm import matmul as product

#: Minimum input and output channels for the Winograd path (see the module doc for the measurements).
MIN_CHANNELS = 128
#: Bytes of a channel block's scratch (padded input and row transform): about a core's L2.
_BLOCK_BYTES = 256 << 10
#: The same for F(4x4, 3x3), whose blocks each cost ~15 small BLAS calls: 1-2 MB measured fastest
#: (320 -> 320 at 32x32, batch 2: 9.9 ms against 12.8 ms at 256 kB and 12.1 ms at 16 MB).
_F4_BLOCK_BYTES = 2 << 20

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# F(4x4, 3x3) at the points 0, +-1, +-2 and infinity (Lavin & Gray's matrices): weight, input and
# output transforms.
_G4 = np.array([
    [1 / 4, 0.0, 0.0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0.0, 0.0, 1.0],
])
_BT4 = np.array([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], F32)
_AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], F32)
#: F(4x4, 3x3) only when its packed weight, (6x6) / (3x3) = 4x the float32 3x3 weight, stays under
#: this (SDXL's 1280-wide convs keep F(2x2, 3x3), which holds 16 / 9: a real-size UNet would
#: otherwise grow by 2.8 GB), and the output is at least F4_MIN_SIZE pixels on each side.
F4_MAX_PACKED_BYTES = 128 << 20
F4_MIN_SIZE = 12


@dataclass(frozen=True)
class WinogradWeight:
    """A 3x3 conv weight in Winograd form: `u` ((tile + 2)^2, C_out, C_in) for output tiles of
    `tile` x `tile` pixels (2 or 4), `shape` the original (C_out, C_in, 3, 3)."""

    u: np.ndarray
    shape: tuple[int, ...]
    tile: int = 2

    @classmethod
    def pack(cls, weight: np.ndarray, tile: int = 2) -> WinogradWeight:
        g = {2: _G, 4: _G4}[tile]
        c_out, c_in = weight.shape[:2]
        u = np.einsum("ai,ocij,bj->aboc", g, np.asarray(weight, np.float64), g)
        packed = np.ascontiguousarray(u.reshape((tile + 2) ** 2, c_out, c_in), dtype=F32)
        packed.flags.writeable = False
        return cls(packed, tuple(weight.shape), tile)

    @property
    def nbytes(self) -> int:
        return self.u.nbytes


def applies(weight_shape: tuple[int, ...], strides: tuple[int, ...], dilations: tuple[int, ...], groups: int) -> bool:
    """Whether a conv is one this module computes: 2-D 3x3, stride 1, no dilation, one group, wide enough."""
    return (
        len(weight_shape) == 4
        and tuple(weight_shape[2:]) == (3, 3)
        and tuple(strides) == (1, 1)
        and tuple(dilations) == (1, 1)
        and groups == 1
        and weight_shape[0] >= MIN_CHANNELS
        and weight_shape[1] >= MIN_CHANNELS
    )


def choose_tile(weight_shape: tuple[int, ...], output_spatial: tuple[int | None, ...] | None) -> int:
    """Output tile of the Winograd form to pack at load: 4 when the (static) output is large enough
    for the 6x6 transforms to pay and the 4x weight fits its budget, else 2."""
    c_out, c_in = weight_shape[:2]
    if output_spatial is None or len(output_spatial) != 2 or any(d is None for d in output_spatial):
        return 2
    if min(output_spatial) < F4_MIN_SIZE or 36 * c_out * c_in * 4 > F4_MAX_PACKED_BYTES:  # type: ignore[type-var]
        return 2
    return 4


def _blocks(total: int, bytes_per_channel: int, block_bytes: int = _BLOCK_BYTES) -> list[tuple[int, int]]:
    step = max(1, block_bytes // max(bytes_per_channel, 1))
    return [(i, min(total, i + step)) for i in range(0, total, step)]


def _phase_range(pad_before: int, size: int, tiles: int, phase: int) -> tuple[int, int, int]:
    """For one phase (even or odd padded rows), the first and past-last tile index holding input
    rows, and the input row the first one holds: padded row 2 * i + phase is input row
    2 * i + phase - pad_before."""
    first = max(0, -(-(pad_before - phase) // 2))
    last = min(tiles, (size - 1 + pad_before - phase) // 2)  # inclusive; may be < first
    return first, last + 1, 2 * first + phase - pad_before


def conv3x3(x: np.ndarray, weight: WinogradWeight, pads: list[tuple[int, int]], bias: np.ndarray | None) -> np.ndarray:
    """(N, C_in, H, W) -> (N, C_out, Ho, Wo), pads (before, after) per spatial dim, non-negative."""
    if weight.tile == 4:
        return _conv_f4(x, weight, pads, bias)
    return _conv_f2(x, weight, pads, bias)


def _conv_f2(x: np.ndarray, weight: WinogradWeight, pads: list[tuple[int, int]], bias: np.ndarray | None) -> np.ndarray:
    """F(2x2, 3x3). Layout (why it is fast in numpy): the zero-padded input is split once into its four phase
    planes (even / odd rows x even / odd columns), each (th + 1) x S with S = tw + 1. A tile's
    four rows are then two planes at flat offsets 0 and S, and its four columns two planes at flat
    offsets 0 and 1, so every transform step is one contiguous numpy pass over a whole channel
    block instead of thousands of short strided loops. The price is one unused column per tile
    row (S instead of tw tiles per row) carried through the GEMM: 1 / tw more GEMM work.
    """
    n, c, h, wd = x.shape
    u = weight.u
    c_out = u.shape[1]
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - 2, wd + left + right - 2
    th, tw = -(-ho // 2), -(-wo // 2)  # 2x2 output tiles; odd sizes get one more zero row / column
    row = tw + 1  # S: tile columns per flat row, the last one unused
    span = th * row  # flat length of one (channel, image) plane of tiles
    v = np.empty((4, 4, c, n * span), F32)
    by_channel = x.transpose(1, 0, 2, 3)
    rows_at = [_phase_range(top, h, th, p) for p in (0, 1)]
    cols_at = [_phase_range(left, wd, tw, p) for p in (0, 1)]

    def transform_input(share: list[tuple[int, int]]) -> None:
        for c0, c1 in share:
            planes = (c1 - c0) * n
            phases = np.zeros((2, 2, c1 - c0, n, th + 1, row), F32)
            for pr, (i0, i1, r0) in enumerate(rows_at):
                for pc, (j0, j1, q0) in enumerate(cols_at):
                    if i1 > i0 and j1 > j0:
                        phases[pr, pc, :, :, i0:i1, j0:j1] = by_channel[c0:c1, :, r0 : r0 + 2 * (i1 - i0) : 2, q0 : q0 + 2 * (j1 - j0) : 2]
            flat = phases.reshape(2, 2, planes, (th + 1) * row)
            t = np.empty((4, 2, planes, span), F32)  # B^T d along rows: rows i and i + 1 of each phase
            for pc in (0, 1):
                even, odd = flat[0, pc], flat[1, pc]
                np.subtract(even[:, :span], even[:, row:], out=t[0, pc])
                np.add(odd[:, :span], even[:, row:], out=t[1, pc])
                np.subtract(even[:, row:], odd[:, :span], out=t[2, pc])
                np.subtract(odd[:, :span], odd[:, row:], out=t[3, pc])
            for a in range(4):  # ... then along columns (columns j and j + 1 of each phase), into V
                even, odd = t[a, 0], t[a, 1]
                dest = v[a, :, c0:c1].reshape(4, planes, span)
                np.subtract(even[:, :-1], even[:, 1:], out=dest[0, :, :-1])
                np.add(odd[:, :-1], even[:, 1:], out=dest[1, :, :-1])
                np.subtract(even[:, 1:], odd[:, :-1], out=dest[2, :, :-1])
                np.subtract(odd[:, :-1], odd[:, 1:], out=dest[3, :, :-1])
                dest[:, :, -1] = 0.0  # the unused last column (finite, so no slow denormal or NaN work)

    parallel_for(transform_input, _blocks(c, 4 * n * (th + 1) * row * 3), v.size)
    m = product(u, v.reshape(16, c, n * span)).reshape(4, 4, c_out, n * span)
    v = None  # type: ignore[assignment]  (free V before the output is allocated)
    out = np.empty((n, c_out, 2 * th, 2 * tw), F32)
    by_out = out.transpose(1, 0, 2, 3)
    b2 = None if bias is None else np.asarray(bias, F32).reshape(c_out, 1)

    def transform_output(share: list[tuple[int, int]]) -> None:
        for o0, o1 in share:
            mm = m[:, :, o0:o1]
            s = np.empty((2, 4, o1 - o0, n * span), F32)  # A^T M along rows, flat
            np.add(mm[0], mm[1], out=s[0])
            s[0] += mm[2]
            np.subtract(mm[1], mm[2], out=s[1])
            s[1] -= mm[3]
            if b2 is not None:  # column 1 enters both output columns with sign +1: the bias goes there once
                s[:, 1] += b2[o0:o1]
            tiles = s.reshape(2, 4, o1 - o0, n, th, row)[..., :tw]
            for i in range(2):  # ... then along columns, into the interleaved output pixels
                left_px = by_out[o0:o1, :, i::2, 0::2]
                right_px = by_out[o0:o1, :, i::2, 1::2]
                np.add(tiles[i, 0], tiles[i, 1], out=left_px)
                left_px += tiles[i, 2]
                np.subtract(tiles[i, 1], tiles[i, 2], out=right_px)
                right_px -= tiles[i, 3]

    parallel_for(transform_output, _blocks(c_out, 4 * n * span * 8), m.size)
    if 2 * th != ho or 2 * tw != wo:
        out = np.ascontiguousarray(out[:, :, :ho, :wo])
    return out


def _conv_f4(x: np.ndarray, weight: WinogradWeight, pads: list[tuple[int, int]], bias: np.ndarray | None) -> np.ndarray:
    """F(4x4, 3x3): 36 products per 16 output pixels instead of F(2x2, 3x3)'s 16 per 4.

    The transforms are small matrix products (B^T d B with 6x6 B^T, A^T m A with 4x6 A^T) that
    numpy hands to BLAS on channel blocks held in cache: measured faster than the ~17 elementwise
    passes per 6 rows the transforms need when written out, and simpler. Tiles are gathered from
    the block's zero-padded input through a strided view (each tile a 6x6 window at a step of 4).
    """
    n, c, h, wd = x.shape
    u = weight.u
    c_out = u.shape[1]
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - 2, wd + left + right - 2
    th, tw = -(-ho // 4), -(-wo // 4)  # 4x4 output tiles; a ragged edge gets zero rows / columns
    hp, wp = 4 * th + 2, 4 * tw + 2  # >= h + top + bottom: the whole input fits the padded frame
    tiles = n * th * tw
    v = np.empty((6, 6, c, tiles), F32)

    def transform_input(share: list[tuple[int, int]]) -> None:
        for c0, c1 in share:
            block = c1 - c0
            padded = np.zeros((block, n, hp, wp), F32)
            padded[:, :, top : top + h, left : left + wd] = x[:, c0:c1].transpose(1, 0, 2, 3)
            s = padded.strides
            windows = as_strided(padded, (6, 6, block, n, th, tw), (s[2], s[3], s[0], s[1], 4 * s[2], 4 * s[3]))
            d = np.ascontiguousarray(windows).reshape(6, 6 * block * tiles)
            rows = np.matmul(_BT4, d).reshape(6, 6, block * tiles)  # B^T d, then (B^T d) B per row
            for a in range(6):
                np.matmul(_BT4, rows[a], out=v[a, :, c0:c1].reshape(6, block * tiles))

    parallel_for(transform_input, _blocks(c, 4 * (n * hp * wp + 72 * tiles), _F4_BLOCK_BYTES), v.size)
    m = product(u, v.reshape(36, c, tiles)).reshape(6, 6, c_out, tiles)
    v = None  # type: ignore[assignment]  (free V before the output is allocated)
    out = np.empty((n, c_out, 4 * th, 4 * tw), F32)
    b2 = None if bias is None else np.asarray(bias, F32).reshape(c_out, 1)

    def transform_output(share: list[tuple[int, int]]) -> None:
        for o0, o1 in share:
            block = o1 - o0
            half = np.empty((4, 6, block * tiles), F32)  # A^T m, then (A^T m) A per row
            for b in range(6):
                np.matmul(_AT4, m[:, b, o0:o1].reshape(6, block * tiles), out=half[:, b])
            y = np.empty((4, 4, block, tiles), F32)
            for i in range(4):
                np.matmul(_AT4, half[i], out=y[i].reshape(4, block * tiles))
            if b2 is not None:
                y += b2[o0:o1]
            pixels = out[:, o0:o1].reshape(n, block, th, 4, tw, 4).transpose(3, 5, 1, 0, 2, 4)
            pixels[...] = y.reshape(4, 4, block, n, th, tw)

    parallel_for(transform_output, _blocks(c_out, 4 * 52 * tiles, _F4_BLOCK_BYTES), m.size)
    if 4 * th != ho or 4 * tw != wo:
        out = np.ascontiguousarray(out[:, :, :ho, :wo])
    return out
