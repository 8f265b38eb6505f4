"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3).

Why: the 3x3 convolutions of an SDXL UNet are about half of a call's time, and numpy's GEMM is
the ceiling of any direct or im2col method. F(2x2, 3x3) computes each 2x2 output tile from a 4x4
input tile with 16 products per (input, output) channel pair instead of 36: the GEMM work drops
2.25x for a few elementwise passes (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2015; oneDNN uses the same scheme on CPUs). Measured on this 2-core box, single thread,
batch 2: 640->640 @ 16x16 25 ms vs 56 ms im2col / shifted GEMM (torch's oneDNN direct conv 36 ms);
1280->1280 @ 24x24 197 ms vs 447 ms (torch 360 ms); 320->320 @ 32x32 28-32 ms vs 46-49 ms. Below
128 channels the transforms cost more than they save (64->64 @ 32x32 4.2 ms vs 3.6 ms), so
`applies` keeps small convs on the GEMM paths. The error stays at float32 rounding level: against
torch, PSNR 140 dB vs 144 dB for the direct method on random weights.

The weight transform U = G g G^T is done once at load (`WinogradWeight.pack`), in float64, and
replaces the 3x3 weight in memory (16 / 9 of its size). Per call: the input tiles are transformed
(V = B^T d B) in channel blocks that stay in cache, one batched GEMM per tile position
(16 x (C_out, C_in) @ (C_in, tiles)), then the output transform (Y = A^T M A) and the bias, again in
channel blocks; the blocks run on the kernel threads, the GEMM on BLAS's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.engines.reference.ops._util import F32, parallel_for

#: Minimum input and output channels for the Winograd path (see the module doc for the measurements).
MIN_CHANNELS = 128
#: Bytes of a channel block's scratch (padded input and row transform): about a core's L2.
_BLOCK_BYTES = 256 << 10

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class WinogradWeight:
    """A 3x3 conv weight in Winograd form: `u` (16, C_out, C_in), `shape` the original (C_out, C_in, 3, 3)."""

    u: np.ndarray
    shape: tuple[int, ...]

    @classmethod
    def pack(cls, weight: np.ndarray) -> WinogradWeight:
        c_out, c_in = weight.shape[:2]
        u = np.einsum("ai,ocij,bj->aboc", _G, np.asarray(weight, np.float64), _G)
        packed = np.ascontiguousarray(u.reshape(16, c_out, c_in), dtype=F32)
        packed.flags.writeable = False
        return cls(packed, tuple(weight.shape))

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


def _blocks(total: int, bytes_per_channel: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_BYTES // max(bytes_per_channel, 1))
    return [(i, min(total, i + step)) for i in range(0, total, step)]


def conv3x3(x: np.ndarray, weight: WinogradWeight, pads: list[tuple[int, int]], bias: np.ndarray | None) -> np.ndarray:
    """(N, C_in, H, W) -> (N, C_out, Ho, Wo), pads (before, after) per spatial dim, non-negative."""
    n, c, h, wd = x.shape
    u = weight.u
    c_out = u.shape[1]
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - 2, wd + left + right - 2
    th, tw = -(-ho // 2), -(-wo // 2)  # 2x2 output tiles; odd sizes get one more zero row / column
    hp, wp = 2 * th + 2, 2 * tw + 2
    tiles = n * th * tw
    v = np.empty((4, 4, c, n, th, tw), F32)
    by_channel = x.transpose(1, 0, 2, 3)

    def transform_input(share: list[tuple[int, int]]) -> None:
        for c0, c1 in share:
            xp = np.zeros((c1 - c0, n, hp, wp), F32)
            xp[:, :, top : top + h, left : left + wd] = by_channel[c0:c1]  # hp >= top + h + bottom
            r = [xp[:, :, a : a + 2 * th : 2] for a in range(4)]
            t = np.empty((4, c1 - c0, n, th, wp), F32)  # B^T d along rows
            np.subtract(r[0], r[2], out=t[0])
            np.add(r[1], r[2], out=t[1])
            np.subtract(r[2], r[1], out=t[2])
            np.subtract(r[1], r[3], out=t[3])
            for a in range(4):  # ... then along columns, into V
                q = [t[a][..., b : b + 2 * tw : 2] for b in range(4)]
                dest = v[a, :, c0:c1]
                np.subtract(q[0], q[2], out=dest[0])
                np.add(q[1], q[2], out=dest[1])
                np.subtract(q[2], q[1], out=dest[2])
                np.subtract(q[1], q[3], out=dest[3])

    parallel_for(transform_input, _blocks(c, 4 * n * hp * wp * 3), v.size)
    m = np.matmul(u, v.reshape(16, c, tiles)).reshape(4, 4, c_out, n, th, tw)
    v = None  # type: ignore[assignment]  (free V before the output is allocated)
    out = np.empty((n, c_out, 2 * th, 2 * tw), F32)
    by_out = out.transpose(1, 0, 2, 3)
    b4 = None if bias is None else np.asarray(bias, F32).reshape(c_out, 1, 1, 1)

    def transform_output(share: list[tuple[int, int]]) -> None:
        for o0, o1 in share:
            mm = m[:, :, o0:o1]
            s = np.empty((2, 4, o1 - o0, n, th, tw), F32)  # A^T M along rows
            np.add(mm[0], mm[1], out=s[0])
            s[0] += mm[2]
            np.subtract(mm[1], mm[2], out=s[1])
            s[1] -= mm[3]
            for i in range(2):  # ... then along columns, into the interleaved output pixels
                left_px = by_out[o0:o1, :, i::2, 0::2]
                right_px = by_out[o0:o1, :, i::2, 1::2]
                np.add(s[i, 0], s[i, 1], out=left_px)
                left_px += s[i, 2]
                np.subtract(s[i, 1], s[i, 2], out=right_px)
                right_px -= s[i, 3]
                if b4 is not None:
                    left_px += b4[o0:o1]
                    right_px += b4[o0:o1]

    parallel_for(transform_output, _blocks(c_out, 4 * tiles * 8), m.size)
    if 2 * th != ho or 2 * tw != wo:
        out = np.ascontiguousarray(out[:, :, :ho, :wo])
    return out
